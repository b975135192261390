"""Malformed contents for the fuzzer (`simulations.fuzz`): one function per kind of damage.

A mutation changes a message's `RecordDict` in place, drawing its choices from
``rng``, and returns whether the result must be refused (``True``) or may be
harmless (``False``: e.g. flipped bytes that land in float data, a changed step
number). It returns None when the content has nothing it can damage.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from flwr_split.wire import KEY_CONFIG, KEY_INFO, KEY_ORDER, META_SUFFIX
from flwr_split.wire.arrays import NPY_MAGIC, from_array, to_array

Mutation = Callable[[RecordDict, np.random.Generator], bool | None]
HUGE_DIMS = (10**12, 2**40, 2**62, 2**63 - 1)
"""Element counts a hostile header claims."""
EXTRA_BYTES = 2**20
"""Size of an extra array (1 MiB: the reply cap is tested in tests/wire, not here)."""


def raw_array(dtype: str, shape: tuple, data: bytes) -> Array:
    """Return an Array with exactly these fields (as a hostile peer could send them)."""
    array = Array(dtype="uint8", shape=(0,), stype="numpy.ndarray", data=b"")
    array.__dict__.update(dtype=dtype, shape=shape, data=data)
    return array


def copy_content(content: RecordDict) -> RecordDict:
    """Return a copy of ``content`` whose records and arrays can be damaged independently."""
    copied = RecordDict()
    for key, record in content.items():
        if isinstance(record, ArrayRecord):
            copied[key] = ArrayRecord(
                {n: raw_array(a.dtype, tuple(a.shape), bytes(a.data)) for n, a in record.items()}
            )
        else:
            copied[key] = type(record)(dict(record))
    return copied


def npy_bytes(header: str, body: bytes = b"", major: int = 1) -> bytes:
    """Return ``.npy`` bytes with an arbitrary header text."""
    size = struct.pack("<H" if major == 1 else "<I", len(header))
    return NPY_MAGIC + bytes([major, 0]) + size + header.encode("latin1") + body


def _pick(content: RecordDict, rng: np.random.Generator) -> tuple[ArrayRecord, str] | None:
    """Return a random (record, array name) of the content, or None if it has no array."""
    arrays = [
        (record, name)
        for record in content.values()
        if isinstance(record, ArrayRecord)
        for name in record
    ]
    return arrays[rng.integers(len(arrays))] if arrays else None


def flip_bytes(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """XOR 1-8 bytes of one array's raw data (header or values)."""
    if (target := _pick(content, rng)) is None:
        return None
    record, name = target
    data = bytearray(record[name].data)
    if not data:
        return None
    positions = rng.integers(0, len(data), rng.integers(1, 9))
    for position in positions:
        data[position] ^= int(rng.integers(1, 256))
    old = record[name]
    record[name] = raw_array(old.dtype, tuple(old.shape), bytes(data))
    return False


def huge_header(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Replace one array by a valid-looking header that claims a huge shape."""
    if (target := _pick(content, rng)) is None:
        return None
    record, name = target
    count = int(rng.choice(HUGE_DIMS))
    shape = (count,) if rng.random() < 0.5 else (count, count)
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    record[name] = raw_array("float32", shape, npy_bytes(header, b"\0" * 64))
    return True


GARBAGE_HEADERS = (
    "{'descr': '<f4', 'fortran_order': False, 'shape': (3,",  # truncated literal
    "[" * 5000 + "]" * 5000,  # nested
    "(" * 200 + ")" * 200,
    "{'descr': '|O', 'fortran_order': False, 'shape': (1,)}",  # object dtype
    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",  # structured
    "{'descr': '<f4', 'fortran_order': 'no', 'shape': (1,)}",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
    "{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}",
    "{'descr': '(1000000000,)f4', 'fortran_order': False, 'shape': (1,)}",
    "__import__('os').system('true')",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1e300,)}",
    "\udcff" * 10,
)


def garbage_header(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Replace one array's data by a corrupted ``.npy`` header (or none at all)."""
    if (target := _pick(content, rng)) is None:
        return None
    record, name = target
    old = record[name]
    choice = int(rng.integers(len(GARBAGE_HEADERS) + 4))
    if choice < len(GARBAGE_HEADERS):
        text = GARBAGE_HEADERS[choice].encode("latin1", "replace").decode("latin1")
        data = npy_bytes(text, b"\0" * 16, major=int(rng.choice([1, 2, 3])))
    else:
        data = [
            b"",
            NPY_MAGIC,
            NPY_MAGIC + b"\x09\x00\x10\x00",
            NPY_MAGIC + b"\x02\x00\xff\xff\xff\x7f",
        ][choice - len(GARBAGE_HEADERS)]
    record[name] = raw_array(old.dtype, tuple(old.shape), data)
    return True


def wrong_dtype(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Re-encode one array in another dtype (same values)."""
    if (target := _pick(content, rng)) is None:
        return None
    record, name = target
    values = from_array(record[name])
    choices = [d for d in ("float64", "float16", "int8", "int64", "complex64") if d != values.dtype]
    record[name] = Array(values.astype(str(rng.choice(choices))))
    return True


def wrong_shape(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Drop, add or rearrange elements of one array."""
    if (target := _pick(content, rng)) is None:
        return None
    record, name = target
    values = from_array(record[name]).reshape(-1)
    how = int(rng.integers(3))
    if how == 0 and values.size:
        values = values[: int(rng.integers(values.size))]
    elif how == 1:
        values = np.concatenate([values, values[: max(1, values.size // 2)]])
    else:
        values = values.reshape(1, -1, 1)
    record[name] = to_array(np.ascontiguousarray(values))
    return True


def non_finite(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Put NaN, inf or a huge finite value into a float array."""
    floats = [
        (record, name)
        for record in content.values()
        if isinstance(record, ArrayRecord)
        for name, array in record.items()
        if array.dtype in ("float32", "float16", "float64") and math.prod(array.shape)
    ]
    if not floats:
        return None
    record, name = floats[rng.integers(len(floats))]
    values = from_array(record[name])
    value = float(rng.choice([np.nan, np.inf, -np.inf, 3e38]))
    values.reshape(-1)[rng.integers(values.size)] = value
    record[name] = to_array(values)
    return not math.isfinite(value)


def missing_record(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Delete one record (a missing ``sl.info`` is harmless but in a hello reply)."""
    keys = list(content.keys())
    if not keys:
        return None
    key = keys[rng.integers(len(keys))]
    hello = key == KEY_INFO and "num_partitions" in content[key]
    del content[key]
    return key != KEY_INFO or hello


def extra_record(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Add a record nobody asked for: a 1 MiB array, a config or metrics."""
    kind = int(rng.integers(3))
    if kind == 0:
        content["sl.extra"] = ArrayRecord({"x": to_array(np.zeros(EXTRA_BYTES, np.uint8))})
    elif kind == 1:
        content["sl.extra"] = ConfigRecord({"json": "x" * 1000})
    else:
        content["sl.extra"] = MetricRecord({"x": 1.0})
    return True


def array_set(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Delete one array of a record, or add an extra 1 MiB one."""
    if (target := _pick(content, rng)) is None:
        return None
    record, name = target
    if rng.random() < 0.5:
        del record[name]
    else:
        record["junk"] = to_array(np.ones(EXTRA_BYTES // 4, np.float32))
    return True


def swap_record_type(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Replace one record by a record of another kind."""
    keys = [k for k in content.keys() if k != KEY_INFO]
    if not keys:
        return None
    key = keys[rng.integers(len(keys))]
    old = content[key]
    content[key] = ConfigRecord({"json": "{}"}) if isinstance(old, ArrayRecord) else ArrayRecord()
    return True


def bad_json(content: RecordDict, rng: np.random.Generator) -> bool | None:
    """Replace metadata JSON: deeply nested, huge, not JSON, or with hostile values."""
    metas = [k for k in content.keys() if k.endswith(META_SUFFIX)]
    if not metas:
        return None
    key = metas[rng.integers(len(metas))]
    meta = json.loads(content[key]["json"])
    depth = int(rng.choice([50, 5000, 200_000]))
    texts = [
        "[" * depth + "]" * depth,
        '{"a":' * depth + "1" + "}" * depth,
        json.dumps({**meta, "pad": "x" * int(rng.choice([10**5, 8 * 10**6]))}),
        "{not json",
        "",
        json.dumps({**meta, "shape": [int(rng.choice(HUGE_DIMS))] * 2}),
        json.dumps({**meta, "shape": ["a", -1]}),
        json.dumps({**meta, "shape": 7}),
        json.dumps({**meta, "extra": 1}),
        json.dumps([meta]),
        '{"shape": [1' + "0" * 5000 + "]}",
        json.dumps({k: (10**18 if isinstance(v, int) else v) for k, v in meta.items()}),
        json.dumps({k: ("x" if k != "shape" else v) for k, v in meta.items()}),
    ]
    choice = int(rng.integers(len(texts)))
    content[key] = ConfigRecord({"json": texts[choice]})
    # Changing every scalar leaves a codec whose only metadata is its shape unchanged.
    return choice not in (11, 12) or any(k != "shape" for k in meta)


def field_values(key: str) -> Mutation:
    """Return a mutation of one field of the ``key`` Config/MetricRecord."""

    def mutate(content: RecordDict, rng: np.random.Generator) -> bool | None:
        record = content.get(key)
        if record is None or not len(record):
            return None
        names = list(record.keys())
        name = names[rng.integers(len(names))]
        values: list = [10**12, -1, 2**63 - 1, 1e308, float("nan"), float("inf"), 2.5, "x", True]
        value = values[rng.integers(len(values))]
        kind = MetricRecord if isinstance(record, MetricRecord) else ConfigRecord
        fields = dict(record)
        if isinstance(value, str | bool) and kind is MetricRecord:
            del fields[name]
            value = None
        else:
            fields[name] = value
        content[key] = kind(fields)
        hello = key == KEY_INFO and "num_partitions" in record
        return is_strict(key if not hello else "hello", name, record[name], value)

    return mutate


def is_strict(key: str, name: str, old: object, new: object) -> bool:
    """Whether changing field ``name`` of ``key`` from ``old`` to ``new`` must be refused.

    ``key`` is ``"hello"`` for the ``sl.info`` of a hello reply, whose fields
    must all be right; a step reply's ``sl.info`` only reports a compute time,
    which is clamped. Elsewhere a removed field, or one of another type, must
    be refused, and so must a slice offset or count out of range; other values
    may be harmless (a huge step number or learning rate is legal).
    """
    if key == "hello":
        return name != "version"
    if key == KEY_INFO:
        return False
    if new is None or type(new) is not type(old):
        return not (type(old) is float and type(new) is int)  # an int is a valid float
    if key == KEY_ORDER and name.endswith(("offset", "count")):
        return bool(new != old and (new < 0 or new > 10**6))
    return False


REPLY_MUTATIONS: dict[str, Mutation] = {
    "flip_bytes": flip_bytes,
    "huge_header": huge_header,
    "garbage_header": garbage_header,
    "wrong_dtype": wrong_dtype,
    "wrong_shape": wrong_shape,
    "non_finite": non_finite,
    "missing_record": missing_record,
    "extra_record": extra_record,
    "array_set": array_set,
    "swap_record_type": swap_record_type,
    "bad_json": bad_json,
    "info_values": field_values(KEY_INFO),
}
"""Damage done to a client's reply (server side of the fuzzer)."""
SERVER_MUTATIONS: dict[str, Mutation] = {
    **{k: v for k, v in REPLY_MUTATIONS.items() if k != "info_values"},
    "order_values": field_values(KEY_ORDER),
    "config_values": field_values(KEY_CONFIG),
}
"""Damage done to a server's message (client side of the fuzzer)."""
