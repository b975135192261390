"""What a client sent for one slice, decoded and checked against what the server asked for."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from flwr.app import RecordDict

from flwr_split.codecs import Codec
from flwr_split.server.messenger import Messenger
from flwr_split.server.roster import Roster
from flwr_split.wire import (
    KEY_ACTS,
    ClientInfo,
    ProtocolError,
    decode_tensor,
    get_encoded,
    get_targets,
)
from flwr_split.wire.guard import untrusted
from flwr_split.wire.layouts import payload_layout


@dataclass
class CutBatch:
    """Activations and targets (class labels or values) one client sent for one slice."""

    client: ClientInfo
    acts: torch.Tensor
    labels: torch.Tensor


@dataclass
class CutReader:
    """Reads replies that carry activations and targets; rejects the clients of bad ones.

    Parameters
    ----------
    messenger : Messenger
        Where rejections go.
    uplink : Codec
        Codec of the activations.
    roster : Roster
        Knows, once the clients said hello, the per-sample shape of the
        activations, and the kind of targets.
    """

    messenger: Messenger
    uplink: Codec
    roster: Roster

    def max_bytes(self, count: int) -> int:
        """Most array bytes a good reply with ``count`` samples' activations and targets holds.

        The uplink codec's layout cap for the activations (dense float32 for a
        tensor too large to probe) plus 8 bytes per target value.
        """
        cut_shape = self.roster.cut_shape
        assert cut_shape is not None, "the hello precedes any activations"
        shape = (count, *cut_shape)
        layout = payload_layout(self.uplink, shape)
        acts = layout.max_bytes if layout is not None else 4 * math.prod(shape)
        return acts + 8 * count * math.prod(getattr(self.roster.target, "shape", ()))

    def read(
        self, step: int, client: ClientInfo, content: RecordDict, count: int
    ) -> CutBatch | None:
        """Decode ``count`` samples' activations and targets; None (client rejected) if bad.

        The payload is checked against the uplink codec's layout for exactly
        ``count`` samples before it is copied or decoded; nothing raises.
        """
        cut_shape = self.roster.cut_shape
        assert cut_shape is not None, "the hello precedes any activations"
        shape = (count, *cut_shape)
        layout = payload_layout(self.uplink, shape)
        try:
            with untrusted("unreadable activations"):
                encoded = get_encoded(content, KEY_ACTS, layout.max_bytes if layout else None)
                acts = decode_tensor(self.uplink, encoded, shape, "activations")
                labels = get_targets(content, count, self.roster.target)
        except ProtocolError as exc:
            self.messenger.reject(step, client, str(exc))
            return None
        return CutBatch(client, acts, labels)
