"""Flower `Array` objects to and from numpy, with the ``.npy`` header cached.

`Array(ndarray)` runs `np.save` and `Array.numpy()` runs `np.load`; both
format or parse the ``.npy`` header (a Python-literal dict) for every array,
which is most of their cost for the small arrays of an SL step. The bytes made
here are exactly `np.save`'s, so messages and their sizes do not change. A
received Array whose data does not start with the header its declared dtype and
shape call for goes through `Array.numpy()` and all of `np.load`'s checks.
"""

from __future__ import annotations

import math
from functools import lru_cache
from io import BytesIO

import numpy as np
from flwr.app import Array

NUMPY_STYPE = "numpy.ndarray"
FAST_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "uint8",
        "int16",
        "uint16",
        "int32",
        "uint32",
        "int64",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)
"""Dtypes read without `np.load` (plain numbers; anything else takes Flower's path)."""
MAX_DIMS = 64
"""NumPy's limit on dimensions."""


@lru_cache(maxsize=512)
def npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    """Return the ``.npy`` header `np.save` writes for a C-ordered array.

    Parameters
    ----------
    dtype : str
        A name in `FAST_DTYPES`.
    shape : tuple of int
        The array's shape (at most `MAX_DIMS` entries).

    Returns
    -------
    bytes
        Magic string, version, header length and the padded header dict.
    """
    fields = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": shape,
    }
    buffer = BytesIO()
    # Version 1.0, as np.save picks it: these dtypes and at most MAX_DIMS
    # dimensions keep the header far below its 65,535-byte limit.
    np.lib.format.write_array_header_1_0(buffer, fields)
    return buffer.getvalue()


def to_array(values: np.ndarray) -> Array:
    """Return a Flower Array holding ``values`` (same bytes as ``Array(values)``).

    Parameters
    ----------
    values : np.ndarray
        An array of a dtype in `FAST_DTYPES`; other dtypes go through `Array`.
    """
    dtype = str(values.dtype)
    if dtype not in FAST_DTYPES:
        return Array(values)
    shape = tuple(int(n) for n in values.shape)
    data = npy_header(dtype, shape) + np.ascontiguousarray(values).tobytes()
    return Array(dtype=dtype, shape=shape, stype=NUMPY_STYPE, data=data)


def from_array(array: Array) -> np.ndarray:
    """Return a writable copy of the numpy array an Array holds.

    Parameters
    ----------
    array : Array
        A received Array: untrusted. Its data is read directly when it is
        exactly the header of its declared numeric dtype and shape followed by
        that many bytes; otherwise `Array.numpy()` parses and checks it.

    Raises
    ------
    ValueError, TypeError
        From `Array.numpy()`, for data that is not a valid ``.npy`` array.
    """
    shape = array.shape
    if (
        array.stype == NUMPY_STYPE
        and array.dtype in FAST_DTYPES
        and isinstance(shape, (tuple, list))
        and len(shape) <= MAX_DIMS
        and all(type(n) is int and n >= 0 for n in shape)
    ):
        shape = tuple(shape)
        nbytes = math.prod(shape) * np.dtype(array.dtype).itemsize
        header = npy_header(array.dtype, shape)
        data = array.data
        if len(data) == len(header) + nbytes and data[: len(header)] == header:
            values = np.frombuffer(data, dtype=array.dtype, offset=len(header))
            return values.reshape(shape).copy()
    return array.numpy()
