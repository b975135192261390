"""The SL wire protocol: message types, RecordDict layout, payload conversion, validation.

One message type per SL action, following Flower's ``<category>.<action>`` rule:

``query.sl_hello``
    server -> client: ``sl.cfg``. Reply: ``sl.info`` (partition id, sample counts).
``train.sl_step``
    server -> client: ``sl.cfg``, ``sl.order`` and, when due, ``sl.grad`` (the
    encoded cut-layer gradient of an earlier forward) and ``sl.bottom`` (bottom
    weights to adopt). Reply: ``sl.acts`` + ``sl.labels`` for a forward,
    ``sl.bottom_grad`` or ``sl.bottom`` when asked, and ``sl.info``.
``evaluate.sl_forward``
    server -> client: ``sl.cfg``, ``sl.order`` and maybe ``sl.bottom``. Reply:
    ``sl.acts`` + ``sl.labels`` of the client's test shard.

An encoded tensor travels as an ``ArrayRecord`` (the codec's payload arrays) plus
a ``ConfigRecord`` holding its metadata as JSON under the same key with the
suffix ``.meta``. Everything that arrives is validated here; a violation raises
`ProtocolError` with a reason meant for the log and the error reply.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.supercore.inflatable.inflatable_object import (
    get_all_nested_objects,
    no_object_id_recompute,
)
from torch import nn

from flwr_split.codecs import CodecError, Encoded
from flwr_split.codecs.base import all_finite, shape_from_meta
from flwr_split.optim import OptimizerConfig
from flwr_split.tasks import TaskConfig
from flwr_split.typed_values import as_kind
from flwr_split.wire_arrays import from_array, to_array

MSG_HELLO = "query.sl_hello"
MSG_STEP = "train.sl_step"
MSG_EVAL = "evaluate.sl_forward"

KEY_CONFIG = "sl.cfg"
KEY_ORDER = "sl.order"
KEY_INFO = "sl.info"
KEY_ACTS = "sl.acts"
KEY_GRAD = "sl.grad"
KEY_LABELS = "sl.labels"
KEY_BOTTOM = "sl.bottom"
KEY_BOTTOM_GRAD = "sl.bottom_grad"
META_SUFFIX = ".meta"

ERROR_CODE_BAD_MESSAGE = 4001
"""`flwr.app.Error` code of a reply to a message the client rejected."""
ERROR_CODE_STALE_WEIGHTS = 4002
"""`flwr.app.Error` code: the client lacks the bottom weights the order assumes."""


class ProtocolError(ValueError):
    """A message that does not follow the protocol (missing, malformed or wrong-sized field)."""

    code = ERROR_CODE_BAD_MESSAGE


class StaleWeightsError(ProtocolError):
    """The client does not hold the bottom weights version that the order assumes."""

    code = ERROR_CODE_STALE_WEIGHTS


@dataclass(frozen=True)
class SessionConfig:
    """Everything a client needs to act on any SL message, sent with each one.

    Parameters
    ----------
    task : TaskConfig
        Task, cut and data split.
    uplink : str
        Codec spec of the activations (client -> server).
    downlink : str
        Codec spec of the cut-layer gradients (server -> client).
    optimizer : OptimizerConfig
        Optimizer of the client's bottom when it updates locally.
    correction : float (default: 0.0)
        Weight λ >= 0 of the gradient correction: the client back-propagates
        ``G + λ (Z − Z̃)``, with ``Z̃`` the uplink codec's reconstruction of its
        activations ``Z`` (`flwr_split.correction`); ``0`` uses ``G`` as is.
    """

    task: TaskConfig
    uplink: str
    downlink: str
    optimizer: OptimizerConfig
    correction: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.correction) or self.correction < 0:
            raise ValueError(f"correction must be finite and >= 0, got {self.correction!r}")

    def to_record(self) -> ConfigRecord:
        """Flatten into a ConfigRecord (task fields, codecs, ``opt_*`` fields)."""
        flat: dict[str, Any] = dict(self.task.as_dict())
        flat.update(uplink=self.uplink, downlink=self.downlink, correction=self.correction)
        flat.update({f"opt_{k}": v for k, v in asdict(self.optimizer).items()})
        return ConfigRecord(flat)

    @classmethod
    def from_record(cls, record: ConfigRecord) -> SessionConfig:
        """Rebuild from `to_record` output; raise `ProtocolError` on any bad field."""
        try:
            task = TaskConfig(**_typed_fields(record, TaskConfig))
            opt = {
                f.name: _typed(record, f"opt_{f.name}", type(getattr(OptimizerConfig(), f.name)))
                for f in fields(OptimizerConfig)
            }
            return cls(
                task=task,
                uplink=_typed(record, "uplink", str),
                downlink=_typed(record, "downlink", str),
                optimizer=OptimizerConfig(**opt),
                correction=_typed(record, "correction", float),
            )
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"bad {KEY_CONFIG}: {exc}") from exc


@dataclass(frozen=True)
class StepOrder:
    """What the server asks of one client in one message.

    A slice ``(epoch, offset, count)`` names samples ``perm[offset:offset+count]``
    of the client's epoch permutation (see `flwr_split.client.batch_indices`);
    ``count == 0`` means no such work.

    Parameters
    ----------
    step : int
        Global step (or evaluation round) number.
    version : int
        Version of the server's bottom weights this order assumes.
    fwd_epoch, fwd_offset, fwd_count : int
        Forward request: send activations and labels of this slice.
    bwd_epoch, bwd_offset, bwd_count : int
        Backward: ``sl.grad`` is the gradient for this earlier slice.
    bwd_mode : str
        ``"apply"`` (step the local optimizer) or ``"return"`` (send the bottom
        gradient back in ``sl.bottom_grad``).
    return_weights : bool
        After the backward, send the bottom weights (for FedAvg sync).
    """

    step: int = 0
    version: int = 0
    fwd_epoch: int = 0
    fwd_offset: int = 0
    fwd_count: int = 0
    bwd_epoch: int = 0
    bwd_offset: int = 0
    bwd_count: int = 0
    bwd_mode: str = "apply"
    return_weights: bool = False

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type == "int" and getattr(self, f.name) < 0:
                raise ProtocolError(f"{KEY_ORDER}.{f.name} must be >= 0")
        if self.bwd_mode not in ("apply", "return"):
            raise ProtocolError(f"{KEY_ORDER}.bwd_mode must be 'apply' or 'return'")

    def to_record(self) -> ConfigRecord:
        """Return the order as a ConfigRecord."""
        return ConfigRecord({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_record(cls, record: ConfigRecord) -> StepOrder:
        """Rebuild from `to_record` output; raise `ProtocolError` on any bad field."""
        return cls(**_typed_fields(record, cls))


def _typed(record: ConfigRecord, key: str, kind: type) -> Any:
    if key not in record:
        raise ProtocolError(f"missing field '{key}'")
    value = record[key]
    try:
        return as_kind(value, kind)
    except TypeError:
        raise ProtocolError(
            f"field '{key}' must be {kind.__name__}, got {type(value).__name__}"
        ) from None


def _typed_fields(record: ConfigRecord, cls: type) -> dict[str, Any]:
    defaults = cls()
    return {f.name: _typed(record, f.name, type(getattr(defaults, f.name))) for f in fields(cls)}


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
    content[key] = ArrayRecord({name: to_array(arr) for name, arr in encoded.arrays.items()})
    content[key + META_SUFFIX] = ConfigRecord({"json": json.dumps(encoded.meta)})


def get_encoded(content: RecordDict, key: str) -> Encoded:
    """Read an encoded tensor stored by `put_encoded`; raise `ProtocolError` if malformed."""
    arrays = require_record(content, key, ArrayRecord)
    meta_record = require_record(content, key + META_SUFFIX, ConfigRecord)
    try:
        meta = json.loads(_typed(meta_record, "json", str))
        payload = {name: from_array(array) for name, array in arrays.items()}
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"'{key}' payload is unreadable: {exc}") from exc
    if not isinstance(meta, dict):
        raise ProtocolError(f"'{key}' metadata must be a JSON object")
    return Encoded(payload, meta)


DECODE_FAILURES = (ValueError, TypeError, IndexError, RuntimeError, MemoryError, OverflowError)
"""What a codec's ``decode`` may raise on a hostile payload (`CodecError` is a ValueError)."""


def decode_tensor(codec: Any, encoded: Encoded, shape: tuple[int, ...], what: str) -> torch.Tensor:
    """Decode and check that the tensor has ``shape`` and only finite values.

    The payload's declared ``meta["shape"]`` (every codec writes it) must be
    ``shape`` before anything is decoded, so a payload cannot make the decoder
    allocate more than the expected tensor; any failure of the decoder
    becomes a `ProtocolError`.
    """
    try:
        declared = shape_from_meta(encoded)
    except CodecError as exc:
        raise ProtocolError(f"{what}: {exc}") from exc
    if declared != shape:
        raise ProtocolError(f"{what} declares shape {declared}, expected {shape}")
    try:
        tensor = codec.decode(encoded)
    except DECODE_FAILURES as exc:
        raise ProtocolError(f"{what}: undecodable payload: {type(exc).__name__}: {exc}") from exc
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


def put_labels(content: RecordDict, labels: np.ndarray, num_classes: int) -> None:
    """Store labels in the smallest unsigned dtype."""
    content[KEY_LABELS] = ArrayRecord({"y": to_array(labels.astype(labels_dtype(num_classes)))})


def get_labels(content: RecordDict, count: int, num_classes: int) -> torch.Tensor:
    """Read ``count`` labels in ``[0, num_classes)``; raise `ProtocolError` otherwise."""
    record = require_record(content, KEY_LABELS, ArrayRecord)
    if "y" not in record:
        raise ProtocolError(f"'{KEY_LABELS}' has no array 'y'")
    try:
        labels = from_array(record["y"])
    except (ValueError, TypeError) as exc:
        raise ProtocolError(f"labels are unreadable: {exc}") from exc
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
    return ArrayRecord(
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
        try:
            value = torch.from_numpy(from_array(record[name]))
        except (ValueError, TypeError) as exc:
            raise ProtocolError(f"{what}[{name}] is unreadable: {exc}") from exc
        if value.shape != ref.shape or value.dtype != ref.dtype:
            raise ProtocolError(
                f"{what}[{name}] is {value.dtype}{tuple(value.shape)}, "
                f"expected {ref.dtype}{tuple(ref.shape)}"
            )
        if value.is_floating_point() and not all_finite(value):
            raise ProtocolError(f"{what}[{name}] holds NaN or inf values")
        tensors[name] = value
    return tensors


def load_weights(model: nn.Module, record: ArrayRecord, what: str) -> None:
    """Load weights into ``model``; raise `ProtocolError` on missing keys, shapes or NaN."""
    model.load_state_dict(read_tensors(record, model.state_dict(), what))


def info_record(**values: int | float) -> MetricRecord:
    """Return a MetricRecord of the given scalars."""
    return MetricRecord({k: v for k, v in values.items()})


def payload_nbytes(record: ArrayRecord) -> int:
    """Bytes of the numpy data in an ArrayRecord (without the .npy headers)."""
    return int(
        sum(
            np.dtype(a.dtype).itemsize * int(np.prod(a.shape, dtype=np.int64))
            for a in record.values()
        )
    )


def message_nbytes(message: Message) -> int:
    """Total bytes of the serialized Message: all objects Flower sends for it.

    Object ids are computed once per object (Flower would otherwise rehash
    every subtree for each ancestor).
    """
    with no_object_id_recompute():
        objects = get_all_nested_objects(message)
        return int(sum(len(obj.deflate()) for obj in objects.values()))
