"""A node's data location: its partition from the node config, or its own ``.npz`` file."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Context, RecordDict

from flwr_split.tasks import load_npz, node_data_path, node_partition


def _context(**node_config: object) -> Context:
    return Context(run_id=1, node_id=1, node_config=node_config, state=RecordDict(), run_config={})


def test_npz_round_trip_keeps_any_shape_and_dtype(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 9, (5, 80)),
        "y_train": rng.integers(0, 3, 5),
        "x_test": rng.integers(0, 9, (2, 80)),
        "y_test": rng.integers(0, 3, 2),
    }
    np.savez(tmp_path / "node.npz", **arrays)
    train, test = load_npz(node_data_path(_context(**{"data-path": str(tmp_path / "node.npz")})))
    assert np.array_equal(train.x, arrays["x_train"]) and np.array_equal(test.y, arrays["y_test"])


def test_npz_without_every_array_names_the_missing_ones(tmp_path):
    np.savez(tmp_path / "half.npz", x_train=np.zeros((2, 3)), y_train=np.zeros(2))
    with pytest.raises(ValueError, match=r"lacks arrays \['x_test', 'y_test'\]"):
        load_npz(tmp_path / "half.npz")


def test_partition_comes_from_the_node_config():
    assert node_partition(_context(**{"partition-id": 2, "num-partitions": 5})) == (2, 5)
    assert node_data_path(_context()) is None
    with pytest.raises(ValueError, match="partition-id"):
        node_partition(_context())
