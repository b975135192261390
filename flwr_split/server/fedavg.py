"""FedAvg of the clients' bottoms, screened so that one upload cannot poison the average.

Each upload is read with its exact names, dtypes and shapes (and no NaN/inf) by
the caller; here its float64 L2 norm must stay within `FEDAVG_NORM_RATIO` times
a reference, the norm of the server's current bottom (the median upload norm
when that is zero). The accepted uploads are averaged in float64, weighted by
samples trained, and cast back to each tensor's dtype.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from flwr_split.wire.hello import ClientInfo
from flwr_split.wire.limits import FEDAVG_NORM_RATIO


@dataclass
class Upload:
    """One client's bottom weights for the average."""

    client: ClientInfo
    weight: int
    """Samples the client trained on since the last average."""
    tensors: dict[str, torch.Tensor]


def weights_norm(tensors: Mapping[str, torch.Tensor]) -> float:
    """Return the float64 L2 norm over all floating-point tensors (inf if it overflows)."""
    total = sum(
        float(t.detach().double().square().sum()) for t in tensors.values() if t.is_floating_point()
    )
    return math.sqrt(total)


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
    base = weights_norm(reference) or (statistics.median(norms) if norms else 0.0)
    bound = FEDAVG_NORM_RATIO * base
    accepted, rejected = [], []
    for upload, norm in zip(uploads, norms, strict=True):
        if math.isfinite(norm) and (norm <= bound or not base):
            accepted.append(upload)
        else:
            rejected.append(
                (
                    upload.client,
                    f"bottom weights norm {norm:.3g} exceeds {bound:.3g} "
                    f"({FEDAVG_NORM_RATIO:g}x the reference {base:.3g})",
                )
            )
    return accepted, rejected


def average(uploads: list[Upload], like: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return the sample-weighted float64 mean of ``uploads``, in the dtypes of ``like``."""
    total = sum(u.weight for u in uploads)
    return {
        name: (sum(u.weight * u.tensors[name].double() for u in uploads) / total).to(ref.dtype)
        for name, ref in like.items()
    }
