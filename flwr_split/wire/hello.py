"""The hello reply: what a client tells the server about itself, checked for sane numbers."""

from __future__ import annotations

import math
from dataclasses import dataclass

from flwr.app import MetricRecord, RecordDict

from flwr_split.wire.contract import KEY_INFO, ProtocolError


def compute_seconds(content: RecordDict) -> float:
    """Return the client's reported compute time (0 if absent or not a sane number)."""
    info = content.get(KEY_INFO)
    value = info.get("compute_s") if isinstance(info, MetricRecord) else None
    if isinstance(value, (int, float)) and math.isfinite(value) and value >= 0:
        return float(value)
    return 0.0


@dataclass(frozen=True)
class ClientInfo:
    """A client as the server knows it after ``query.sl_hello``."""

    node_id: int
    partition_id: int
    train_count: int
    test_count: int


MAX_PARTITIONS = 10**6
"""Largest number of partitions a hello reply may claim."""


def read_client_info(node_id: int, content: RecordDict) -> ClientInfo:
    """Read a ``query.sl_hello`` reply; raise `ProtocolError` unless its numbers are sane.

    ``sl.info`` must hold integral ``partition_id`` in ``[0, num_partitions)``,
    ``num_partitions`` in ``[1, MAX_PARTITIONS]`` and non-negative counts.
    """
    info = content.get(KEY_INFO)
    if not isinstance(info, MetricRecord):
        raise ProtocolError(f"missing '{KEY_INFO}' MetricRecord")
    values = {}
    for name in ("partition_id", "num_partitions", "train_count", "test_count"):
        value = info.get(name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
            raise ProtocolError(f"'{name}' must be an integer, got {value!r}")
        values[name] = int(value)
    if not 1 <= values["num_partitions"] <= MAX_PARTITIONS:
        raise ProtocolError(f"num_partitions {values['num_partitions']} is out of range")
    if not 0 <= values["partition_id"] < values["num_partitions"]:
        raise ProtocolError(f"partition_id {values['partition_id']} is out of range")
    if min(values["train_count"], values["test_count"]) < 0:
        raise ProtocolError("sample counts must be >= 0")
    return ClientInfo(node_id, values["partition_id"], values["train_count"], values["test_count"])
