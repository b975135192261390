"""Skip markers for tests that need a data set installed on this machine (CI installs both)."""

from __future__ import annotations

import pytest

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
