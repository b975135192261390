"""Bytes on the wire: per step, client, direction and kind, counted from real Messages."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd
from flwr.app import ArrayRecord, Message

from flwr_split.wire import (
    KEY_ACTS,
    KEY_BOTTOM,
    KEY_BOTTOM_GRAD,
    KEY_GRAD,
    KEY_LABELS,
    message_nbytes,
    payload_nbytes,
)

UP = "up"
DOWN = "down"
PAYLOAD_KINDS = {
    KEY_ACTS: "activations",
    KEY_GRAD: "gradients",
    KEY_LABELS: "labels",
    KEY_BOTTOM: "sync",
    KEY_BOTTOM_GRAD: "sync",
}
"""Kind of each payload record, but in the phases of `PHASE_KINDS`."""
PHASE_KINDS = {"eval": "eval", "resume": "resume"}
"""Phases whose payloads are booked under their own kind, not as training traffic:
evaluation, and the weights a resumed run re-sends to clients that held them."""
TRAINING_KINDS = ("activations", "gradients", "labels", "sync")
"""Kinds that count as training traffic in the cumulative bytes of a run."""
COLUMNS = ["step", "phase", "partition_id", "direction", "kind", "nbytes"]
"""Columns of `TrafficLog.frame`, one per field of a row."""


@dataclass
class TrafficLog:
    """Accumulates one row per (message, kind) with the payload bytes.

    Payload bytes are the numpy data of the ArrayRecords (what a codec's
    ``nbytes`` counts). Each message also gets a ``message`` row with its whole
    serialized size (all Flower objects: records, metadata, headers) and a
    ``control`` row with the rest (configs, orders, codec metadata).

    Parameters
    ----------
    measure_messages : bool (default: True)
        Serialize each message to count its size (costs about 2 ms per MiB).
    """

    measure_messages: bool = True
    rows: list[tuple[int, str, int, str, str, int]] = field(default_factory=list)
    _totals: Counter[tuple[str, str]] = field(default_factory=Counter)

    def record(
        self, step: int, phase: str, partition_id: int, direction: str, message: Message
    ) -> int:
        """Book the records of ``message``; return its size on the wire.

        That is the serialized size when ``measure_messages`` is on, else the
        payload bytes.
        """
        if not message.has_content():
            return 0
        payload = 0
        for key, record in message.content.items():
            if isinstance(record, ArrayRecord):
                kind = PHASE_KINDS.get(phase) or PAYLOAD_KINDS.get(key, "control")
                nbytes = payload_nbytes(record)
                payload += nbytes
                self._totals[direction, kind] += nbytes
                self.rows.append((step, phase, partition_id, direction, kind, nbytes))
        if self.measure_messages:
            total = message_nbytes(message)
            self.rows.append((step, phase, partition_id, direction, "control", total - payload))
            self.rows.append((step, phase, partition_id, direction, "message", total))
            return total
        return payload

    def frame(self) -> pd.DataFrame:
        """Return all rows as a tidy DataFrame."""
        return pd.DataFrame(self.rows, columns=COLUMNS)

    def training_bytes(self, direction: str) -> int:
        """Total payload bytes of training traffic in one direction so far."""
        return sum(self._totals[direction, kind] for kind in TRAINING_KINDS)

    def training_columns(self) -> dict[str, int]:
        """Cumulative training bytes up and down, and of activations and gradients."""
        return {
            "bytes_up": self.training_bytes(UP),
            "bytes_down": self.training_bytes(DOWN),
            "activation_bytes": self.kind_bytes(UP, "activations"),
            "gradient_bytes": self.kind_bytes(DOWN, "gradients"),
        }

    def kind_bytes(self, direction: str, kind: str) -> int:
        """Total payload bytes of one kind in one direction so far."""
        return self._totals[direction, kind]

    def state_dict(self) -> dict[str, list[list[object]]]:
        """Return the rows and totals so far as plain data (for a checkpoint)."""
        return {
            "rows": [list(row) for row in self.rows],
            "totals": [[*key, nbytes] for key, nbytes in self._totals.items()],
        }

    def load_state_dict(self, state: dict[str, list[list[object]]]) -> None:
        """Put the rows and totals of a `state_dict` before those booked since this log began."""
        self.rows[:0] = [tuple(row) for row in state["rows"]]  # type: ignore[misc]
        for direction, kind, nbytes in state["totals"]:
            self._totals[str(direction), str(kind)] += int(nbytes)  # type: ignore[call-overload]
