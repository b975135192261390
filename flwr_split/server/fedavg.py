"""FedAvg of the clients' bottoms, screened so that one upload cannot poison the average.

Each upload is read with its exact names, dtypes and shapes (and no NaN/inf) by
the caller; here its float64 L2 norm must stay within `FEDAVG_NORM_RATIO` times
a reference, the norm of the server's current bottom (the median upload norm
when that is zero). The accepted uploads are combined in float64 by one of
`flwr_split.options.declaration.AGGREGATIONS` and cast back to each tensor's
dtype: ``mean`` weighted by samples trained (FedAvg), or coordinate-wise and
one vote per client, the
``median`` or the ``trimmed-mean`` (Yin et al., ICML 2018: per coordinate, the
``trim`` fraction of largest and of smallest values dropped, the rest averaged).
An upload within the norm bound can still pull the mean anywhere in that ball;
it moves a coordinate-wise median or trimmed mean only as far as the honest
values around it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from flwr_split.server.screens import bounded, finite_median, float64_norm
from flwr_split.wire.hello import ClientInfo
from flwr_split.wire.limits import FEDAVG_NORM_RATIO, GRADIENT_GAIN_RATIO


@dataclass
class Upload:
    """One client's bottom weights for the average."""

    client: ClientInfo
    weight: int
    """Samples the client trained on since the last average."""
    tensors: dict[str, torch.Tensor]


def weights_norm(tensors: Mapping[str, torch.Tensor]) -> float:
    """Return the float64 L2 norm over all floating-point tensors (inf if it overflows)."""
    return math.sqrt(sum(float64_norm(t) ** 2 for t in tensors.values() if t.is_floating_point()))


def screen(
    uploads: list[Upload], reference: Mapping[str, torch.Tensor]
) -> tuple[list[Upload], list[tuple[ClientInfo, str]]]:
    """Split ``uploads`` into accepted ones and ``(client, reason)`` rejections.

    Parameters
    ----------
    uploads : list[Upload]
        Uploads of the right layout, finite.
    reference : Mapping[str, torch.Tensor]
        The server's current bottom weights.
    """
    norms = [weights_norm(u.tensors) for u in uploads]
    base = weights_norm(reference) or finite_median(norms)
    return bounded(uploads, norms, base, FEDAVG_NORM_RATIO, "bottom weights norm")


def screen_gradients(
    uploads: list[Upload], sent_norms: Mapping[int, float]
) -> tuple[list[Upload], list[tuple[ClientInfo, str]]]:
    """Split bottom gradients (``every_step``) into accepted ones and ``(client, reason)``.

    A client's bottom gradient is its cut-layer gradient pulled back through its
    bottom, so its norm over the norm of that cut-layer gradient (the gain) is
    bounded by the bottom's Jacobian, whatever the loss of the client's samples
    and however many it had. The gain must be finite and within
    `GRADIENT_GAIN_RATIO` times the median gain of the step: with three or more
    clients, one client's huge finite gradient cannot take the server's bottom
    with it. (A norm per sample is no such yardstick: a client whose few samples
    are still misclassified, beside clients whose many samples are learned, had
    thousands of times the median.) Two clients cannot be told apart this way
    (the median is their mean): only a non-finite gain is refused then.

    Parameters
    ----------
    uploads : list[Upload]
        Bottom gradients of the right layout, finite.
    sent_norms : Mapping[int, float]
        Norm of the cut-layer gradient each client was sent, by node id
        (`TopTrainer.sent_norms`).
    """
    gains = [_gain(weights_norm(u.tensors), sent_norms[u.client.node_id]) for u in uploads]
    return bounded(
        uploads, gains, finite_median(gains), GRADIENT_GAIN_RATIO, "bottom gradient gain"
    )


def _gain(norm: float, sent: float) -> float:
    """``norm / sent``; 0 for a zero gradient, inf for a nonzero one from a zero cut gradient."""
    if not norm:
        return 0.0
    return norm / sent if sent else math.inf


def average(uploads: list[Upload], like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the sample-weighted float64 mean of ``uploads``, in the dtypes of ``like``."""
    total = sum(u.weight for u in uploads)
    return {
        name: (sum(u.weight * u.tensors[name].double() for u in uploads) / total).to(ref.dtype)
        for name, ref in like.items()
    }


def trimmed_mean(values: torch.Tensor, trim: float) -> torch.Tensor:
    """Return the coordinate-wise mean of ``values`` (clients first) without the extremes.

    ``floor(trim * n)`` of the ``n`` values of each coordinate are dropped at
    each end; with ``trim`` 0.5 or one value left this is the median (the mean
    of the two middle values for an even ``n``).
    """
    n = values.shape[0]
    cut = min(math.floor(trim * n), (n - 1) // 2)
    ordered = values.sort(dim=0).values
    return ordered[cut : n - cut].mean(dim=0)


def aggregate(
    uploads: list[Upload], like: Mapping[str, torch.Tensor], rule: str = "mean", trim: float = 0.2
) -> dict[str, torch.Tensor]:
    """Combine ``uploads`` by ``rule`` (``AGGREGATIONS``) in float64; cast to ``like``'s dtypes.

    Parameters
    ----------
    uploads : list[Upload]
        Screened uploads (at least one).
    like : Mapping[str, torch.Tensor]
        The names, and the dtypes the result is cast back to.
    rule : str (default: "mean")
        ``"mean"``: weighted by samples trained; ``"median"`` and
        ``"trimmed-mean"``: coordinate-wise, each client one vote.
    trim : float (default: 0.2)
        Fraction dropped at each end by ``"trimmed-mean"``, in [0, 0.5).
    """
    if rule == "mean":
        return average(uploads, like)
    cut = 0.5 if rule == "median" else trim
    return {
        name: trimmed_mean(torch.stack([u.tensors[name].double() for u in uploads]), cut).to(
            ref.dtype
        )
        for name, ref in like.items()
    }
