"""What the server sends with every message: the session config and the step order."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from functools import cache, lru_cache
from typing import Any

from flwr.app import ConfigRecord

from flwr_split.common.typed_values import as_kind
from flwr_split.tasks import TaskConfig
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.wire.contract import KEY_CONFIG, KEY_ORDER, ProtocolError
from flwr_split.wire.limits import MAX_SAMPLES
from flwr_split.wire.scalars import config_record


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
        activations ``Z`` (`flwr_split.client.correction`); ``0`` uses ``G`` as is.
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
        """Rebuild from `to_record` output; raise `ProtocolError` on any bad field.

        Every message of a run carries the same ``sl.cfg``, so a content (each
        field's name, type and value, in order) is parsed once and remembered.
        """
        content = tuple((key, type(value), value) for key, value in record.items())
        try:
            return _session_of(content)
        except TypeError:  # an unhashable (list) value: never a valid config, parse it anyway
            return cls.parse(record)

    @classmethod
    def parse(cls, record: Mapping[str, Any]) -> SessionConfig:
        """Rebuild from `to_record` output, checking every field; raise `ProtocolError`."""
        try:
            task = TaskConfig(**_typed_fields(record, TaskConfig))
            opt = {
                name: typed_field(record, f"opt_{name}", kind)
                for name, kind in field_kinds(OptimizerConfig)
            }
            return cls(
                task=task,
                uplink=typed_field(record, "uplink", str),
                downlink=typed_field(record, "downlink", str),
                optimizer=OptimizerConfig(**opt),
                correction=typed_field(record, "correction", float),
            )
        except (TypeError, ValueError) as exc:
            raise ProtocolError(f"bad {KEY_CONFIG}: {exc}") from exc


@dataclass(frozen=True)
class StepOrder:
    """What the server asks of one client in one message.

    A slice ``(epoch, offset, count)`` names samples ``perm[offset:offset+count]``
    of the client's epoch permutation (see `flwr_split.wire.batch_indices`);
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
        for name in ("fwd_offset", "fwd_count", "bwd_offset", "bwd_count"):
            if getattr(self, name) > MAX_SAMPLES:
                raise ProtocolError(f"{KEY_ORDER}.{name} must be <= {MAX_SAMPLES}")
        if self.bwd_mode not in ("apply", "return"):
            raise ProtocolError(f"{KEY_ORDER}.bwd_mode must be 'apply' or 'return'")

    def to_record(self) -> ConfigRecord:
        """Return the order as a ConfigRecord."""
        return config_record({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_record(cls, record: ConfigRecord) -> StepOrder:
        """Rebuild from `to_record` output; raise `ProtocolError` on any bad field."""
        return cls(**_typed_fields(record, cls))


def typed_field(record: Mapping[str, Any], key: str, kind: type) -> Any:
    """Return ``record[key]`` as ``kind``; raise `ProtocolError` if missing or of another type."""
    if key not in record:
        raise ProtocolError(f"missing field '{key}'")
    value = record[key]
    try:
        return as_kind(value, kind)
    except TypeError:
        raise ProtocolError(
            f"field '{key}' must be {kind.__name__}, got {type(value).__name__}"
        ) from None


@lru_cache(maxsize=64)
def _session_of(content: tuple[tuple[str, type, Any], ...]) -> SessionConfig:
    return SessionConfig.parse({key: value for key, _, value in content})


@cache
def field_kinds(cls: type) -> tuple[tuple[str, type], ...]:
    """Return ``(name, type of its default)`` of every field of a dataclass with defaults."""
    defaults = cls()
    return tuple((f.name, type(getattr(defaults, f.name))) for f in fields(cls))


def _typed_fields(record: Mapping[str, Any], cls: type) -> dict[str, Any]:
    return {name: typed_field(record, name, kind) for name, kind in field_kinds(cls)}
