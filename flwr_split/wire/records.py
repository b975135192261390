"""Records on the wire: encoded tensors, labels and weights, validated as they are read."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, MetricRecord, RecordDict
from torch import nn

from flwr_split.codecs import CodecError, Encoded
from flwr_split.codecs.base import all_finite, shape_from_meta
from flwr_split.tasks.targets import Classes, Target
from flwr_split.wire.arrays import ArraySpec, array_nbytes, array_record, from_array, to_array
from flwr_split.wire.contract import KEY_LABELS, META_SUFFIX, ProtocolError
from flwr_split.wire.guard import bounded_json, untrusted
from flwr_split.wire.layouts import check_payload, payload_layout
from flwr_split.wire.orders import typed_field
from flwr_split.wire.scalars import config_record, metric_record


def require_record(content: RecordDict, key: str, kind: type) -> Any:
    """Return ``content[key]``, checking that it exists and is a ``kind`` record."""
    if key not in content:
        raise ProtocolError(f"message has no '{key}' record")
    record = content[key]
    if not isinstance(record, kind):
        raise ProtocolError(f"'{key}' must be a {kind.__name__}, got {type(record).__name__}")
    return record


def put_encoded(content: RecordDict, key: str, encoded: Encoded) -> None:
    """Store an encoded tensor under ``key`` (arrays) and ``key.meta`` (JSON metadata)."""
    content[key] = array_record({name: to_array(arr) for name, arr in encoded.arrays.items()})
    content[key + META_SUFFIX] = config_record({"json": json.dumps(encoded.meta)})


def get_encoded(content: RecordDict, key: str, max_bytes: int | None = None) -> Encoded:
    """Read an encoded tensor stored by `put_encoded`; raise `ProtocolError` if malformed.

    The metadata JSON is length- and depth-capped before it is parsed; with
    ``max_bytes``, the arrays' raw bytes are capped before any is copied.
    Nothing but `ProtocolError` leaves this function.
    """
    arrays = require_record(content, key, ArrayRecord)
    meta_record = require_record(content, key + META_SUFFIX, ConfigRecord)
    with untrusted(f"'{key}' payload is unreadable"):
        arrived = sum(array_nbytes(array) for array in arrays.values())
        if max_bytes is not None and arrived > max_bytes:
            raise ProtocolError(f"'{key}' carries {arrived} bytes, at most {max_bytes} expected")
        meta = bounded_json(typed_field(meta_record, "json", str), f"'{key}' metadata")
        payload = {name: from_array(array) for name, array in arrays.items()}
    if not isinstance(meta, dict):
        raise ProtocolError(f"'{key}' metadata must be a JSON object")
    return Encoded(payload, meta)


def decode_tensor(codec: Any, encoded: Encoded, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """Decode and check that the tensor has ``shape`` and only finite values.

    The payload's declared ``meta["shape"]`` (every codec writes it) must be
    ``shape``, and its arrays and metadata must be those the codec produces for
    that shape (`payload_layout`), before anything is decoded, so a payload
    cannot make the decoder allocate more than the expected tensor; any
    failure of the decoder becomes a `ProtocolError`.
    """
    try:
        declared = shape_from_meta(encoded)
    except CodecError as exc:
        raise ProtocolError(f"{what}: {exc}") from exc
    if declared != shape:
        raise ProtocolError(f"{what} declares shape {declared}, expected {shape}")
    layout = payload_layout(codec, shape)
    if layout is not None:
        check_payload(encoded, layout, what)
    with untrusted(f"{what}: undecodable payload"):
        tensor = codec.decode(encoded)
    if tuple(tensor.shape) != shape:
        raise ProtocolError(f"{what} has shape {tuple(tensor.shape)}, expected {shape}")
    if tensor.dtype != torch.float32:
        raise ProtocolError(f"{what} has dtype {tensor.dtype}, expected float32")
    if not all_finite(tensor):
        raise ProtocolError(f"{what} holds NaN or inf values")
    return tensor


def labels_dtype(num_classes: int) -> np.dtype:
    """Return the smallest unsigned dtype that holds labels ``0..num_classes-1``."""
    return np.dtype(
        np.uint8 if num_classes <= 256 else np.uint16 if num_classes <= 65536 else np.int64
    )


def put_targets(content: RecordDict, targets: np.ndarray, target: Target) -> None:
    """Store a batch's targets: labels of `Classes` as `put_labels` does, `Values` as float32."""
    if isinstance(target, Classes):
        put_labels(content, targets, target.num_classes)
    else:
        content[KEY_LABELS] = array_record({"y": to_array(targets.astype(np.float32))})


def get_targets(content: RecordDict, count: int, target: Target) -> torch.Tensor:
    """Read ``count`` targets of ``target``'s kind; raise `ProtocolError` otherwise.

    `Values` must be float32 of shape ``(count, *target.shape)``, all finite.
    """
    if isinstance(target, Classes):
        return get_labels(content, count, target.num_classes)
    values = _target_array(content)
    if values.dtype != np.float32 or values.shape != (count, *target.shape):
        raise ProtocolError(
            f"targets are {values.dtype}{values.shape}, expected float32{(count, *target.shape)}"
        )
    if not np.isfinite(values).all():
        raise ProtocolError("targets hold NaN or inf values")
    return torch.from_numpy(values)


def _target_array(content: RecordDict) -> np.ndarray:
    record = require_record(content, KEY_LABELS, ArrayRecord)
    if "y" not in record:
        raise ProtocolError(f"'{KEY_LABELS}' has no array 'y'")
    try:
        return from_array(record["y"])
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"labels are unreadable: {exc}") from exc


def put_labels(content: RecordDict, labels: np.ndarray, num_classes: int) -> None:
    """Store labels in the smallest unsigned dtype."""
    content[KEY_LABELS] = array_record({"y": to_array(labels.astype(labels_dtype(num_classes)))})


def get_labels(content: RecordDict, count: int, num_classes: int) -> torch.Tensor:
    """Read ``count`` labels in ``[0, num_classes)``; raise `ProtocolError` otherwise."""
    labels = _target_array(content)
    if labels.dtype != labels_dtype(num_classes):
        raise ProtocolError(
            f"labels have dtype {labels.dtype}, expected {labels_dtype(num_classes)}"
        )
    if labels.shape != (count,):
        raise ProtocolError(f"labels have shape {labels.shape}, expected ({count},)")
    if count and int(labels.max()) >= num_classes:
        raise ProtocolError(f"label {int(labels.max())} out of range [0, {num_classes})")
    return torch.from_numpy(labels.astype(np.int64))


def weights_to_record(model: nn.Module) -> ArrayRecord:
    """Return the model's parameters and buffers as an ArrayRecord."""
    return array_record(
        {k: to_array(v.detach().cpu().numpy()) for k, v in model.state_dict().items()}
    )


def read_tensors(
    record: ArrayRecord, expected: dict[str, torch.Tensor], what: str
) -> dict[str, torch.Tensor]:
    """Read tensors named and shaped like ``expected``; raise `ProtocolError` on any mismatch."""
    if set(record.keys()) != set(expected):
        raise ProtocolError(f"{what} keys {sorted(record.keys())} != expected {sorted(expected)}")
    tensors = {}
    for name, ref in expected.items():
        spec = ArraySpec(str(ref.dtype).removeprefix("torch."), tuple(ref.shape))
        try:
            value = torch.from_numpy(from_array(record[name], spec))
        except ProtocolError as exc:
            raise ProtocolError(f"{what}[{name}]: {exc}") from exc
        if value.is_floating_point() and not all_finite(value):
            raise ProtocolError(f"{what}[{name}] holds NaN or inf values")
        tensors[name] = value
    return tensors


def load_weights(model: nn.Module, record: ArrayRecord, what: str) -> None:
    """Load weights into ``model``; raise `ProtocolError` on missing keys, shapes or NaN."""
    model.load_state_dict(read_tensors(record, model.state_dict(), what))


def info_record(**values: int | float | list[int]) -> MetricRecord:
    """Return a MetricRecord of the given scalars and integer lists."""
    return metric_record(values)
