"""Read IDX files, the format of the original MNIST and Fashion-MNIST distributions.

An IDX file starts with a magic number: two zero bytes, a type byte and the
number of dimensions ``d``; then ``d`` big-endian uint32 sizes, then the values
in C order, big-endian. Files ending in ``.gz`` are read through gzip.
"""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX type byte to the NumPy dtype of its values."""


class IDXError(ValueError):
    """An IDX file is malformed: bad magic number, unknown type, or sizes that do not match."""


def parse_idx(raw: bytes) -> np.ndarray:
    """Return the array stored in the IDX bytes ``raw``, in native byte order.

    Raises
    ------
    IDXError
        If the magic number is wrong (first two bytes not zero, unknown type
        byte, no dimensions) or the header's sizes do not match the number of
        bytes that follow (truncated file or trailing bytes).
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IDXError("not an IDX file: the magic number must start with two zero bytes")
    dtype = IDX_TYPES.get(raw[2])
    if dtype is None:
        raise IDXError(f"unknown IDX value type 0x{raw[2]:02x}")
    ndim = raw[3]
    if ndim == 0:
        raise IDXError("an IDX file needs at least one dimension")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"IDX header truncated: {len(raw)} bytes for {ndim} dimensions")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    if len(raw) - header != expected:
        raise IDXError(
            f"IDX data of shape {shape} needs {expected} bytes after the header, "
            f"found {len(raw) - header}"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Return the array of the IDX file ``path`` (gzip-compressed if it ends in ``.gz``).

    Raises
    ------
    IDXError
        If the file is malformed (see `parse_idx`), or a ``.gz`` file is not valid gzip.
    """
    path = Path(path)
    if path.suffix != ".gz":
        return parse_idx(path.read_bytes())
    try:
        with gzip.open(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as exc:
        raise IDXError(f"{path}: not a valid gzip file ({exc})") from exc
    return parse_idx(raw)
