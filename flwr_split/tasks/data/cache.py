"""The data cache folder, and arrays cached there as ``.npz`` files written atomically.

Many processes (Ray actors, SuperNodes) may build the same cache file at once:
each writes a temporary file in the cache folder and renames it into place, so
a reader sees either no file or a whole one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

DATA_DIR_ENV = "FLWR_SPLIT_DATA_DIR"
"""Environment variable naming the cache folder (default ``~/.cache/flwr-split``)."""


def cache_dir() -> Path:
    """Folder of generated and converted data sets: `DATA_DIR_ENV`, else ``~/.cache/flwr-split``."""
    return Path(os.environ.get(DATA_DIR_ENV, Path.home() / ".cache" / "flwr-split"))


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` (uncompressed ``.npz``) via a temporary file and a rename.

    Raises
    ------
    ValueError
        If an array holds Python objects (they could be read back only by unpickling).
    """
    pickled = [name for name, array in arrays.items() if array.dtype.hasobject]
    if pickled:
        raise ValueError(f"arrays {pickled} hold Python objects; the cache stores plain arrays")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache may be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_arrays(name: str, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return the arrays cached as ``cache_dir() / name``, made by ``make()`` on the first call.

    Parameters
    ----------
    name : str
        File name in the cache folder, ending in ``.npz``.
    make : Callable[[], dict[str, np.ndarray]]
        Builds the arrays when the file does not exist yet; they are written
        atomically (`write_npz_atomic`) and returned.

    Returns
    -------
    dict[str, np.ndarray]
        The arrays by name (read without unpickling).
    """
    path = cache_dir() / name
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    arrays = make()
    write_npz_atomic(path, arrays)
    return arrays
