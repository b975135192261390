"""Flower `Array` objects to and from numpy: cached ``.npy`` headers out, checked bytes in.

`Array(ndarray)` runs `np.save` and `Array.numpy()` runs `np.load`; both
format or parse the ``.npy`` header (a Python-literal dict) for every array,
which is most of their cost for the small arrays of an SL step. The bytes made
here are exactly `np.save`'s, so messages and their sizes do not change.

A received Array is untrusted: `from_array` never calls `np.load`. It parses
the header itself (length-capped, ``ast.literal_eval`` guarded), checks it
against the Array's declared dtype and shape, the bytes present and what the
reader expects (`ArraySpec`), and only then views the data, so no claim in a
header can make it allocate more than the bytes that arrived.
"""

from __future__ import annotations

import ast
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from io import BytesIO

import numpy as np
from flwr.app import Array, ArrayRecord

from flwr_split.wire.contract import ProtocolError
from flwr_split.wire.guard import untrusted
from flwr_split.wire.limits import MAX_NPY_HEADER

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
"""Dtypes written without `np.save` (plain numbers; anything else takes Flower's path)."""
FAST_DTYPE_NAMES = {np.dtype(name): name for name in FAST_DTYPES}
"""Name of each fast dtype by dtype object (``str(dtype)`` costs about 15 us in NumPy 2)."""
FAST_DTYPE_SIZES = {name: np.dtype(name).itemsize for name in FAST_DTYPES}
MAX_DIMS = 64
"""NumPy's limit on dimensions."""
NPY_MAGIC = b"\x93NUMPY"
HEADER_KEYS = frozenset({"descr", "fortran_order", "shape"})
NUMERIC_KINDS = frozenset("biufc")
"""Kinds of dtype a received array may have: bool, integers, floats, complex."""


@dataclass(frozen=True)
class ArraySpec:
    """What a reader expects of one received array (``None``: not checked).

    Parameters
    ----------
    dtype : str or None
        NumPy dtype name, e.g. ``"float32"``.
    shape : tuple of int or None
        Exact shape.
    max_bytes : int or None
        Largest data size in bytes.
    ndim : int or None
        Number of dimensions (for arrays whose length varies).
    """

    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    max_bytes: int | None = None
    ndim: int | None = None


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
    dtype = FAST_DTYPE_NAMES.get(values.dtype)
    if dtype is None:
        return Array(values)
    shape = values.shape
    # one copy: join writes the header and the array's buffer straight into the result
    data = b"".join(
        (npy_header(dtype, shape), np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    )
    return numpy_array(dtype, shape, data)


def numpy_array(dtype: str, shape: tuple[int, ...], data: bytes) -> Array:
    """Return ``Array(dtype=dtype, shape=shape, stype=NUMPY_STYPE, data=data)``, built directly.

    Flower's constructor sorts out which of its three forms it was called with
    and checks every argument (about 25 us per Array); for the arrays
    `to_array` makes, whose fields are right by construction, the new Array's
    attributes are set as that constructor leaves them (tested against it).
    """
    array = Array.__new__(Array)
    array.__dict__.update(
        {"_is_dirty": True, "dtype": dtype, "shape": shape, "stype": NUMPY_STYPE, "data": data}
    )
    return array


def array_record(arrays: Mapping[str, Array]) -> ArrayRecord:
    """Return an ArrayRecord that holds these Array objects themselves.

    ``ArrayRecord(dict)`` rebuilds every Array (Flower's argument checks once
    more per array), and setting the items one by one checks each key and
    value through typing casts (about 10 us an item); the names and Arrays are
    checked here once and stored as item assignment stores them (tested
    against it).
    """
    items = dict(arrays)
    if not all(type(name) is str and isinstance(a, Array) for name, a in items.items()):
        raise TypeError("an ArrayRecord maps str names to Array objects")
    record = ArrayRecord()
    record.__dict__["_data"].update(items)
    record.is_dirty = True
    return record


def from_array(array: Array, spec: ArraySpec | None = None) -> np.ndarray:
    """Return a writable copy of the numpy array an Array holds, checked before it is read.

    Parameters
    ----------
    array : Array
        A received Array: untrusted.
    spec : ArraySpec or None (default: None)
        What the reader expects; checked before any data is copied.

    Raises
    ------
    ProtocolError
        For anything but a valid C- or Fortran-ordered ``.npy`` array of a
        numeric dtype whose header matches the Array's declared dtype and shape
        and the bytes present, and ``spec``; never any other exception.
    """
    with untrusted("array is unreadable"):
        dtype, shape, fortran, offset = npy_layout(array)
        if spec is not None:
            check_spec(dtype, shape, spec)
        count = math.prod(shape)
        if count == 0:
            return np.zeros(shape, dtype)
        values = np.frombuffer(array.data, dtype=dtype, count=count, offset=offset)
        return values.reshape(shape, order="F" if fortran else "C").copy()


def array_nbytes(array: Array) -> int:
    """Return the data bytes of a received Array, never trusting an unchecked claim.

    That is dtype size times element count when the Array is a valid ``.npy``
    array (exactly what was counted before for good payloads), else the length
    of its raw bytes (the header included), or 0 if it has no bytes at all.
    """
    try:
        dtype, shape, _, _ = npy_layout(array)
    except ProtocolError:
        data = getattr(array, "data", b"")
        return len(data) if isinstance(data, bytes) else 0
    return dtype.itemsize * math.prod(shape)


def npy_layout(array: Array) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Return dtype, shape, Fortran order and data offset of a received Array.

    Raises `ProtocolError` unless the Array's bytes are a ``.npy`` header of a
    numeric dtype that matches the declared ``dtype`` and ``shape``, followed
    by exactly the bytes that header calls for; never any other exception.
    """
    with untrusted("array is unreadable"):
        data, declared = array.data, array.shape
        if array.stype != NUMPY_STYPE or not isinstance(data, bytes):
            raise ProtocolError(f"array must be {NUMPY_STYPE} bytes, got stype {array.stype!r}")
        if not isinstance(array.dtype, str) or not isinstance(declared, (tuple, list)):
            raise ProtocolError("array declares no dtype name or shape")
        if array.dtype in FAST_DTYPES and valid_shape(declared):
            header = npy_header(array.dtype, tuple(declared))
            nbytes = math.prod(declared) * FAST_DTYPE_SIZES[array.dtype]
            if len(data) == len(header) + nbytes and data.startswith(header):
                return np.dtype(array.dtype), tuple(declared), False, len(header)
        dtype, shape, fortran, offset = parse_npy_header(data)
        if array.dtype != dtype.name or list(declared) != list(shape):
            raise ProtocolError(
                f"array declares {array.dtype}{tuple(declared)!r} "
                f"but its .npy header says {dtype.name}{shape}"
            )
        if len(data) - offset != dtype.itemsize * math.prod(shape):
            raise ProtocolError(
                f"array {dtype.name}{shape} needs {dtype.itemsize * math.prod(shape)} bytes, "
                f"{len(data) - offset} arrived"
            )
        return dtype, shape, fortran, offset


def parse_npy_header(data: bytes) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """Parse a ``.npy`` header without `np.load`: return dtype, shape, order, data offset.

    The header (version 1, 2 or 3) is at most `MAX_NPY_HEADER` bytes; its
    dict literal is read with ``ast.literal_eval`` (inside `npy_layout`'s guard)
    and must hold exactly ``descr`` (a native numeric dtype), ``fortran_order``
    (a bool) and ``shape`` (non-negative ints, at most `MAX_DIMS`).
    """
    if len(data) < 10 or not data.startswith(NPY_MAGIC):
        raise ProtocolError("array data is not a .npy array (no magic string)")
    major = data[6]
    if major not in (1, 2, 3):
        raise ProtocolError(f".npy version {major} is not supported")
    size_format, start = ("<H", 10) if major == 1 else ("<I", 12)
    (length,) = struct.unpack_from(size_format, data, 8)
    if length > MAX_NPY_HEADER or start + length > len(data):
        raise ProtocolError(f".npy header of {length} bytes is too long or truncated")
    text = data[start : start + length].decode("utf-8" if major == 3 else "latin1")
    fields = ast.literal_eval(text)
    if not isinstance(fields, dict) or set(fields) != HEADER_KEYS:
        raise ProtocolError(f".npy header must hold exactly {sorted(HEADER_KEYS)}")
    descr, fortran, shape = fields["descr"], fields["fortran_order"], fields["shape"]
    if not isinstance(descr, str) or not isinstance(fortran, bool) or not valid_shape(shape):
        raise ProtocolError(".npy header has a bad descr, fortran_order or shape")
    dtype = np.dtype(descr)
    if dtype.kind not in NUMERIC_KINDS or np.lib.format.dtype_to_descr(dtype) != descr:
        raise ProtocolError(f".npy dtype {descr!r} is not a plain numeric dtype")
    if not dtype.isnative:
        raise ProtocolError(f".npy dtype {descr!r} is not in native byte order")
    return dtype, tuple(shape), fortran, start + length


def valid_shape(shape: object) -> bool:
    """Return True if ``shape`` is a tuple or list of at most `MAX_DIMS` non-negative ints."""
    return (
        isinstance(shape, (tuple, list))
        and len(shape) <= MAX_DIMS
        and all(type(n) is int and n >= 0 for n in shape)
    )


def check_spec(dtype: np.dtype, shape: tuple[int, ...], spec: ArraySpec) -> None:
    """Raise `ProtocolError` unless dtype and shape are what ``spec`` expects."""
    if spec.dtype is not None and dtype != np.dtype(spec.dtype):
        raise ProtocolError(f"array has dtype {dtype.name}, expected {spec.dtype}")
    if spec.shape is not None and shape != spec.shape:
        raise ProtocolError(f"array has shape {shape}, expected {spec.shape}")
    if spec.ndim is not None and len(shape) != spec.ndim:
        raise ProtocolError(f"array has {len(shape)} dimensions, expected {spec.ndim}")
    nbytes = dtype.itemsize * math.prod(shape)
    if spec.max_bytes is not None and nbytes > spec.max_bytes:
        raise ProtocolError(f"array of {nbytes} bytes exceeds the {spec.max_bytes} expected")
