"""MNIST-1D is generated locally, cached, reproducible, and leaves global RNGs alone."""

from __future__ import annotations

import random

import numpy as np

from flwr_split.tasks import TaskConfig, build_model, builtin_cut_shape
from flwr_split.tasks.data import mnist1d


def test_generated_split_is_cached_reproducible_and_rng_neutral(tmp_path, monkeypatch):
    monkeypatch.setenv("FLWR_SPLIT_DATA_DIR", str(tmp_path))
    np.random.seed(123)
    random.seed(123)
    before = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    train, test = mnist1d.load_mnist1d_split.__wrapped__(0.2, 5, 500)
    assert (np.random.random(), random.random()) == before
    assert train.x.shape == (400, 1, 40) and test.x.shape == (100, 1, 40)
    assert train.x.dtype == np.float32 and train.y.dtype == np.int64
    assert set(np.unique(train.y)) <= set(range(10))
    assert len(list(tmp_path.glob("mnist1d-500-0.2-5.npz"))) == 1
    again, _ = mnist1d.load_mnist1d_split.__wrapped__(0.2, 5, 500)  # read back from the cache
    assert np.array_equal(again.x, train.x) and np.array_equal(again.y, train.y)


def test_mnist1d_task_cuts_after_relu_blocks():
    assert builtin_cut_shape(TaskConfig(task="mnist1d", cut=1)) == (32, 40)
    assert builtin_cut_shape(TaskConfig(task="mnist1d", cut=2)) == (32, 20)
    bottom, _ = build_model(TaskConfig(task="mnist1d", cut=2))
    assert type(bottom[-1][-1]).__name__ == "ReLU"
