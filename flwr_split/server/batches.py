"""What a client sent for one slice, decoded and checked against what the server asked for."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from flwr.app import RecordDict

from flwr_split.codecs import Codec
from flwr_split.wire import KEY_ACTS, ClientInfo, decode_tensor, get_encoded, get_labels


@dataclass
class CutBatch:
    """Activations and labels one client sent for one slice."""

    client: ClientInfo
    acts: torch.Tensor
    labels: torch.Tensor


def read_cut_batch(
    uplink: Codec,
    client: ClientInfo,
    content: RecordDict,
    shape: tuple[int, ...],
    num_classes: int,
) -> CutBatch:
    """Decode a reply's activations of ``shape`` and its labels; raise `ProtocolError` if bad."""
    acts = decode_tensor(uplink, get_encoded(content, KEY_ACTS), shape, "activations")
    labels = get_labels(content, shape[0], num_classes)
    return CutBatch(client, acts, labels)
