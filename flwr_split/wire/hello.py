"""The hello reply: what a client tells the server about itself, checked for sane numbers.

Besides its partition and sample counts, a client reports what the server needs
instead of reading any data: the per-class counts of its training samples
(classification; the pooled counts are the reference of the batch deviation)
and the shape and dtype of one input sample (the server runs its bottom on a
zero sample of it to learn the cut-layer shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from flwr.app import MetricRecord, RecordDict

from flwr_split.wire.contract import KEY_INFO, ProtocolError
from flwr_split.wire.limits import MAX_SAMPLES


def compute_seconds(content: RecordDict) -> float:
    """Return the client's reported compute time (0 if absent or not a sane number)."""
    info = content.get(KEY_INFO)
    value = info.get("compute_s") if isinstance(info, MetricRecord) else None
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return float(value)
    return 0.0


MAX_PARTITIONS = 10**6
"""Largest number of partitions a hello reply may claim."""
MAX_INPUT_RANK = 8
"""Largest number of axes of one input sample."""
MAX_INPUT_ELEMENTS = 2**22
"""Largest number of elements of one input sample."""
INPUT_DTYPES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
"""Input dtypes a client may report; ``input_dtype`` on the wire is an index into this tuple."""


@dataclass(frozen=True)
class ClientInfo:
    """A client as the server knows it after ``query.sl_hello``."""

    node_id: int
    partition_id: int
    train_count: int
    test_count: int
    class_counts: tuple[int, ...] = ()
    """Training samples per class (classification tasks)."""
    input_shape: tuple[int, ...] = ()
    """Shape of one input sample."""
    input_dtype: str = ""
    """Numpy dtype name of the inputs (one of `INPUT_DTYPES`)."""


def _integer(value: object, name: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value != int(value)
    ):
        raise ProtocolError(f"'{name}' must be an integer, got {value!r}")
    return int(value)


def _integers(value: object, name: str, max_len: int) -> list[int]:
    """Read a list of at most ``max_len`` integers (length checked before anything else)."""
    if not isinstance(value, list):
        raise ProtocolError(f"'{name}' must be a list of integers")
    if len(value) > max_len:
        raise ProtocolError(f"'{name}' has {len(value)} entries, at most {max_len} allowed")
    return [_integer(v, name) for v in value]


def _input_spec(info: MetricRecord) -> tuple[tuple[int, ...], str]:
    shape = _integers(info.get("input_shape"), "input_shape", MAX_INPUT_RANK)
    if not shape or min(shape) < 1:
        raise ProtocolError(f"input_shape {shape} must have 1 to {MAX_INPUT_RANK} positive sizes")
    if math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise ProtocolError(f"input_shape {shape} exceeds {MAX_INPUT_ELEMENTS} elements")
    code = _integer(info.get("input_dtype"), "input_dtype")
    if not 0 <= code < len(INPUT_DTYPES):
        raise ProtocolError(f"input_dtype {code} is not an index into {INPUT_DTYPES}")
    return tuple(shape), INPUT_DTYPES[code]


def _class_counts(info: MetricRecord, num_classes: int, train_count: int) -> tuple[int, ...]:
    counts = _integers(info.get("class_counts"), "class_counts", num_classes)
    if len(counts) != num_classes:
        raise ProtocolError(f"class_counts has {len(counts)} entries, expected {num_classes}")
    if min(counts) < 0 or sum(counts) != train_count:
        raise ProtocolError(f"class_counts must be >= 0 and sum to train_count {train_count}")
    return tuple(counts)


def read_client_info(
    node_id: int, content: RecordDict, num_classes: int | None = None
) -> ClientInfo:
    """Read a ``query.sl_hello`` reply; raise `ProtocolError` unless its numbers are sane.

    ``sl.info`` must hold integral ``partition_id`` in ``[0, num_partitions)``,
    ``num_partitions`` in ``[1, MAX_PARTITIONS]``, sample counts in
    ``[0, MAX_SAMPLES]`` (no plan or evaluation is sized from a larger claim), an
    ``input_shape`` of 1 to `MAX_INPUT_RANK` positive sizes and at most
    `MAX_INPUT_ELEMENTS` elements, an ``input_dtype`` index into `INPUT_DTYPES`
    and, for a classification task (``num_classes``), ``class_counts``: one
    non-negative integer per class, summing to ``train_count``. List lengths
    are checked before their entries.
    """
    info = content.get(KEY_INFO)
    if not isinstance(info, MetricRecord):
        raise ProtocolError(f"missing '{KEY_INFO}' MetricRecord")
    names = ("partition_id", "num_partitions", "train_count", "test_count")
    values = {name: _integer(info.get(name), name) for name in names}
    if not 1 <= values["num_partitions"] <= MAX_PARTITIONS:
        raise ProtocolError(f"num_partitions {values['num_partitions']} is out of range")
    if not 0 <= values["partition_id"] < values["num_partitions"]:
        raise ProtocolError(f"partition_id {values['partition_id']} is out of range")
    counts = (values["train_count"], values["test_count"])
    if min(counts) < 0:
        raise ProtocolError("sample counts must be >= 0")
    if max(counts) > MAX_SAMPLES:
        raise ProtocolError(f"sample counts {counts} exceed {MAX_SAMPLES}")
    input_shape, input_dtype = _input_spec(info)
    class_counts = (
        () if num_classes is None else _class_counts(info, num_classes, values["train_count"])
    )
    return ClientInfo(
        node_id,
        values["partition_id"],
        values["train_count"],
        values["test_count"],
        class_counts,
        input_shape,
        input_dtype,
    )


def hello_fields(
    x: np.ndarray, y: np.ndarray, num_classes: int | None
) -> dict[str, int | list[int]]:
    """Return the hello fields of training data ``(x, y)``: input spec and class counts.

    Raises
    ------
    ValueError
        If the inputs' dtype is not one of `INPUT_DTYPES`.
    """
    if x.dtype.name not in INPUT_DTYPES:
        raise ValueError(f"input dtype {x.dtype} is not one of {INPUT_DTYPES}")
    fields: dict[str, int | list[int]] = {
        "input_shape": list(x.shape[1:]),
        "input_dtype": INPUT_DTYPES.index(x.dtype.name),
    }
    if num_classes is not None:
        fields["class_counts"] = np.bincount(y, minlength=num_classes).tolist()
    return fields
