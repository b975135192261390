"""Outlier screens: a client's value against a multiple of the median over a step's clients.

Used for FedAvg uploads and ``every_step`` bottom gradients
(`flwr_split.server.fedavg`) and for activations before the top's step
(`flwr_split.server.top`). A value that is not finite, or exceeds ``ratio``
times the reference, is rejected with a reason that names both.
"""

from __future__ import annotations

import math
import statistics
from typing import Protocol, TypeVar

import torch

from flwr_split.wire.hello import ClientInfo


class FromClient(Protocol):
    """Anything a client sent: an upload, a batch of activations."""

    client: ClientInfo


Item = TypeVar("Item", bound=FromClient)


def float64_norm(tensor: torch.Tensor) -> float:
    """L2 norm of ``tensor`` accumulated in float64 (no float64 copy of the tensor is made)."""
    return float(torch.linalg.vector_norm(tensor.detach(), dtype=torch.float64))


def finite_median(values: list[float]) -> float:
    """Median of the finite ``values`` (0 if there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else 0.0


def bounded(
    items: list[Item], values: list[float], base: float, ratio: float, what: str
) -> tuple[list[Item], list[tuple[ClientInfo, str]]]:
    """Split ``items`` into accepted ones and ``(client, reason)`` rejections.

    Parameters
    ----------
    items : list
        What the clients sent, each with a ``client``.
    values : list[float]
        The screened value of each item (a norm, a gain, a root mean square).
    base : float
        The reference; with 0 every finite value is accepted.
    ratio : float
        Largest accepted multiple of ``base``.
    what : str
        Name of the value in the reason.
    """
    bound = ratio * base
    accepted, rejected = [], []
    for item, value in zip(items, values, strict=True):
        if math.isfinite(value) and (value <= bound or not base):
            accepted.append(item)
        else:
            rejected.append(
                (
                    item.client,
                    f"{what} {value:.3g} exceeds {bound:.3g} ({ratio:g}x the reference {base:.3g})",
                )
            )
    return accepted, rejected
