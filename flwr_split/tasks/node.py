"""Where a node's data is: its partition of a shared data set or its own ``.npz`` file.

Simulation sets ``partition-id`` / ``num-partitions`` in every node's config; a
deployed SuperNode gets them, or a ``data-path`` to the node's own file, from
``flower-supernode --node-config``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def own_file_or_partition(
    context: Context, partition: Callable[[int, int], tuple[LabeledArrays, LabeledArrays]]
) -> tuple[LabeledArrays, LabeledArrays]:
    """Return this node's ``(train, test)``: its ``data-path`` file, else its partition.

    Parameters
    ----------
    context : Context
        The node's context (``data-path``, or ``partition-id`` and ``num-partitions``).
    partition : Callable[[int, int], tuple[LabeledArrays, LabeledArrays]]
        ``partition(partition_id, num_partitions)`` loads a partition of a shared data set.
    """
    path = node_data_path(context)
    if path is not None:
        return load_npz(path)
    return partition(*node_partition(context))


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
        return split_from_arrays(arrays, path)


def split_from_arrays(
    arrays: Mapping[str, np.ndarray], source: object
) -> tuple[LabeledArrays, LabeledArrays]:
    """Return ``(train, test)`` from the arrays named `NPZ_ARRAYS`.

    Raises
    ------
    ValueError
        If an array is missing (the message names ``source``).
    """
    missing = [name for name in NPZ_ARRAYS if name not in arrays]
    if missing:
        raise ValueError(f"{source} lacks arrays {missing}; it needs {list(NPZ_ARRAYS)}")
    x_train, y_train, x_test, y_test = (arrays[name] for name in NPZ_ARRAYS)
    return LabeledArrays(x_train, y_train), LabeledArrays(x_test, y_test)
