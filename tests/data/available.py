"""Skip markers for tests that need a data set installed on this machine (CI installs both)."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_split.tasks import LabeledArrays, TaskConfig, load_task_data
from flwr_split.tasks.data import fashion_mnist, mnist


def _has_mnist() -> bool:
    try:
        mnist.mnist_pickle()
    except FileNotFoundError:
        return False
    return True


needs_mnist = pytest.mark.skipif(
    not _has_mnist(), reason=f"MNIST is not installed: {mnist.MNIST_INSTALL}"
)
needs_fashion_mnist = pytest.mark.skipif(
    not all((fashion_mnist.idx_dir() / f).is_file() for f in fashion_mnist.IDX_FILES.values()),
    reason=f"Fashion-MNIST IDX files are not installed: {fashion_mnist.APT_INSTALL}",
)


def fixed_28x28_split(task: str) -> tuple[LabeledArrays, LabeledArrays]:
    """Load ``task``'s data; check the 60,000 / 10,000 uint8 1x28x28 images and int64 labels.

    The split must not change with ``test_fraction`` or ``seed``.
    """
    train, test = load_task_data(TaskConfig(task=task))
    assert train.x.shape == (60_000, 1, 28, 28) and test.x.shape == (10_000, 1, 28, 28)
    assert train.x.dtype == test.x.dtype == np.uint8
    assert train.y.dtype == test.y.dtype == np.int64
    assert train.x.max() == 255 and train.x.min() == 0
    other = load_task_data(TaskConfig(task=task, test_fraction=0.5, seed=3))
    assert len(other[0]) == 60_000 and np.array_equal(other[1].y, test.y)
    return train, test
