"""What a client sent for one slice, decoded and checked against what the server asked for."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from flwr.app import RecordDict

from flwr_split.codecs import Codec
from flwr_split.tasks import Target
from flwr_split.wire import KEY_ACTS, ClientInfo, decode_tensor, get_encoded, get_targets


@dataclass
class CutBatch:
    """Activations and targets (class labels or values) one client sent for one slice."""

    client: ClientInfo
    acts: torch.Tensor
    labels: torch.Tensor


def read_cut_batch(
    uplink: Codec,
    client: ClientInfo,
    content: RecordDict,
    shape: tuple[int, ...],
    target: Target,
) -> CutBatch:
    """Decode a reply's activations of ``shape`` and its targets; raise `ProtocolError` if bad."""
    acts = decode_tensor(uplink, get_encoded(content, KEY_ACTS), shape, "activations")
    labels = get_targets(content, shape[0], target)
    return CutBatch(client, acts, labels)
