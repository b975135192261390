"""Write IDX files for tests: the format's header, then the values big-endian."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

TYPE_BYTES = {np.dtype("u1"): 0x08, np.dtype("i2"): 0x0B, np.dtype("f4"): 0x0D}


def idx_bytes(array: np.ndarray) -> bytes:
    """Return ``array`` encoded as IDX (type byte from its dtype, sizes big-endian)."""
    header = bytes([0, 0, TYPE_BYTES[array.dtype], array.ndim])
    sizes = np.asarray(array.shape, dtype=">u4").tobytes()
    return header + sizes + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, raw: bytes) -> Path:
    """Write ``raw`` to ``path``, gzip-compressed if the name ends in ``.gz``."""
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)
    return path
