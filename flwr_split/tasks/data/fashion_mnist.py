"""Fashion-MNIST: the four original IDX files (Debian's ``dataset-fashion-mnist``), else the Hub.

The IDX files are read from `FASHION_DIR_ENV` if set, else from the folder where
``apt-get install dataset-fashion-mnist`` puts them. Without them the data set
is loaded as ``zalando-datasets/fashion_mnist`` through flwr-datasets (network
needed once). Either way the arrays are cached as ``fashion_mnist.npz`` in the
data cache folder, so later loads in any process read only that file. The split
is the data set's own: 60,000 training and 10,000 test images.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.tasks.data.cache import cached_arrays
from flwr_split.tasks.data.hub import HubImages, HubUnavailableError
from flwr_split.tasks.data.idx import read_idx
from flwr_split.tasks.node import split_from_arrays

FASHION_DIR_ENV = "FLWR_SPLIT_FASHION_MNIST_DIR"
"""Environment variable naming a folder with the four IDX files."""
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where Debian's ``dataset-fashion-mnist`` installs the IDX files."""
APT_INSTALL = "apt-get install dataset-fashion-mnist"
HUB_NAME = "zalando-datasets/fashion_mnist"
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
"""The IDX file of each array."""
NUM_CLASSES = 10
CACHE_NAME = "fashion_mnist.npz"


def idx_dir() -> Path:
    """Folder of the IDX files: `FASHION_DIR_ENV`, else `DEBIAN_DIR`."""
    return Path(os.environ.get(FASHION_DIR_ENV, DEBIAN_DIR))


def read_idx_files(folder: Path) -> dict[str, np.ndarray]:
    """Read the four IDX files of ``folder`` and check that they form an image data set.

    Returns
    -------
    dict[str, np.ndarray]
        ``x_train``, ``x_test`` as uint8 ``(n, 1, height, width)``, ``y_train``,
        ``y_test`` as int64 labels in ``[0, 10)``.

    Raises
    ------
    flwr_split.tasks.data.idx.IDXError
        If a file is malformed.
    ValueError
        If the images are not uint8 ``(n, height, width)``, the labels not
        uint8 ``(n,)`` of the same ``n`` in ``[0, 10)``.
    """
    arrays = {name: read_idx(folder / file) for name, file in IDX_FILES.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.dtype != np.uint8 or images.ndim != 3:
            raise ValueError(f"{split} images must be uint8 (n, h, w), got {images.shape}")
        if labels.dtype != np.uint8 or labels.shape != images.shape[:1]:
            raise ValueError(f"{split} labels must be uint8 ({len(images)},), got {labels.shape}")
        if labels.size and labels.max() >= NUM_CLASSES:
            raise ValueError(f"{split} labels must lie in [0, {NUM_CLASSES})")
        arrays[f"x_{split}"] = images[:, None]
        arrays[f"y_{split}"] = labels.astype(np.int64)
    return arrays


def _from_hub() -> dict[str, np.ndarray]:
    train, test = HubImages(HUB_NAME, "image", {"train": 1, "test": 1}, shuffle=False).load()
    return {"x_train": train.x, "y_train": train.y, "x_test": test.x, "y_test": test.y}


def fashion_arrays() -> dict[str, np.ndarray]:
    """Return the Fashion-MNIST arrays (as `read_idx_files`) from the IDX files, else the Hub.

    Raises
    ------
    FileNotFoundError
        If the IDX files are absent and flwr-datasets cannot load the data set;
        the message names both ways to get it.
    """
    folder = idx_dir()
    if all((folder / file).is_file() for file in IDX_FILES.values()):
        return read_idx_files(folder)
    try:
        return _from_hub()
    except HubUnavailableError as exc:
        raise FileNotFoundError(
            f"task 'fashion_mnist' found no IDX files in {folder} and could not load "
            f"{HUB_NAME!r} through flwr-datasets. Either `{APT_INSTALL}` (or point "
            f"{FASHION_DIR_ENV} at a folder with {sorted(IDX_FILES.values())}), or give this "
            f"machine network access once. ({exc})"
        ) from exc


@lru_cache(maxsize=1)
def load_fashion_mnist() -> tuple[LabeledArrays, LabeledArrays]:
    """Return Fashion-MNIST's fixed 60,000 / 10,000 ``(train, test)`` (see `fashion_arrays`)."""
    return split_from_arrays(cached_arrays(CACHE_NAME, fashion_arrays), CACHE_NAME)
