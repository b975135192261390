"""Derived data sets kept on this host's disk: a fresh process reads them, never remakes them.

A deployment SuperNode starts a new ClientApp process for every message; a data
set that is generated (mnist1d) or split with a heavy library (digits, through
scikit-learn) is made once per host and read back with NumPy afterwards. The
files are a speed-up only: deleting them just makes the next load slower.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """Folder for derived data sets (``FLWR_SPLIT_DATA_DIR``, else ``~/.cache/flwr-split``)."""
    return Path(os.environ.get("FLWR_SPLIT_DATA_DIR", Path.home() / ".cache" / "flwr-split"))


def cached_arrays(name: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the arrays of ``cache_dir()/name.npz``, made by ``make()`` and stored if absent.

    The file is written to a temporary name and renamed, so concurrent
    processes never read a half-written one; if it cannot be written (a
    read-only home), the made arrays are returned all the same.
    """
    path = cache_dir() / f"{name}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    arrays = make()
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
    return arrays
