"""Where a node's data is: its partition of a shared data set or its own ``.npz`` file.

Simulation sets ``partition-id`` / ``num-partitions`` in every node's config; a
deployed SuperNode gets them, or a ``data-path`` to the node's own file, from
``flower-supernode --node-config``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from flwr.app import Context

from flwr_split.tasks.data.arrays import LabeledArrays

DATA_PATH_KEY = "data-path"
"""Node-config key of the node's own ``.npz`` file."""
NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
"""Arrays a node's ``.npz`` file holds."""


def node_partition(context: Context) -> tuple[int, int]:
    """Return ``(partition-id, num-partitions)`` from the node config.

    Raises
    ------
    ValueError
        If either is missing or not an integer.
    """
    try:
        partition_id = int(context.node_config["partition-id"])
        num_partitions = int(context.node_config["num-partitions"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            "node config needs integer 'partition-id' and 'num-partitions' "
            "(simulation sets them; pass --node-config to flower-supernode)"
        ) from exc
    return partition_id, num_partitions


def node_data_path(context: Context) -> Path | None:
    """Return the node config's ``data-path`` (None if it has none)."""
    path = context.node_config.get(DATA_PATH_KEY)
    return None if path is None else Path(str(path))


def load_npz(path: str | Path) -> tuple[LabeledArrays, LabeledArrays]:
    """Read a node's own ``(train, test)`` data from a ``.npz`` file.

    Parameters
    ----------
    path : str or Path
        A file written by ``np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)``
        (no pickled objects are read).

    Returns
    -------
    tuple[LabeledArrays, LabeledArrays]
        The training and the test samples.
    """
    with np.load(path, allow_pickle=False) as arrays:
        missing = [name for name in NPZ_ARRAYS if name not in arrays]
        if missing:
            raise ValueError(f"{path} lacks arrays {missing}; it needs {list(NPZ_ARRAYS)}")
        x_train, y_train, x_test, y_test = (arrays[name] for name in NPZ_ARRAYS)
    return LabeledArrays(x_train, y_train), LabeledArrays(x_test, y_test)
