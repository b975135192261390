"""Classic parallel SL: every scheduled client with data left sends a fixed local batch."""

from __future__ import annotations

import numpy as np

from flwr_split.sampling.base import Sampler, check_counts


def fixed_schedule(counts: np.ndarray, batch_size: int | np.ndarray) -> np.ndarray:
    """Client ``k`` sends ``min(batch_size[k], remaining)`` per step until all are empty.

    ``batch_size`` is one local batch for every client or a vector of per-client
    local batches (all >= 1); the epoch lasts ``max_k ceil(counts[k] / batch_size[k])`` steps.
    """
    sizes = np.broadcast_to(np.asarray(batch_size, dtype=np.int64), counts.shape)
    steps = int((-(-counts // sizes)).max()) if counts.size else 0
    taken = np.arange(steps)[:, None] * sizes[None, :]
    return np.clip(counts[None, :] - taken, 0, sizes[None, :])


class FixedLocalBatch(Sampler):
    """Each participating client sends ``min(batch_size, remaining)`` samples per step.

    With ``clients = 0`` every client takes part in every step: the effective
    batch is ``K * batch_size`` and an epoch lasts ``max_k ceil(counts[k] /
    batch_size)`` steps. With ``clients = C`` the epoch's clients are shuffled
    (from ``seed``) into groups of ``C``; each group trains until its data is
    used, then the next group starts, so at most ``C`` clients take part in a
    step and every sample is still used once per epoch.

    With ``drop_last`` every client skips its last, partial local batch in each
    epoch, like PyTorch's ``DataLoader(drop_last=True)``: every message then
    carries exactly ``batch_size`` samples (a per-message cost such as a FedLite
    codebook is never paid for a 1-sample batch). The skipped samples are the
    tail of the epoch's permutation, a different set every epoch.

    Parameters
    ----------
    clients : int (default: 0)
        Clients per step; ``0`` means all.
    drop_last : bool (default: False)
        Skip each client's last local batch of an epoch when it is smaller
        than ``batch_size`` (a client with fewer samples sends none).
    """

    sampler_id = "fixed"
    per_client_batch = True

    def __init__(self, clients: int = 0, drop_last: bool = False) -> None:
        if isinstance(clients, bool) or not isinstance(clients, int) or clients < 0:
            raise ValueError(f"clients must be an int >= 0, got {clients!r}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last must be true or false, got {drop_last!r}")
        self.clients = clients
        self.drop_last = drop_last

    def plan(self, counts: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
        """Plan the epoch: all clients at once, or groups of ``clients`` one after another."""
        counts = check_counts(counts, batch_size)
        if self.drop_last:
            counts = counts - counts % batch_size
            if not counts.any():
                raise ValueError(f"drop_last: no client holds a full batch of {batch_size}")
        if not self.clients or self.clients >= counts.size:
            return fixed_schedule(counts, batch_size)
        order = np.random.default_rng(seed).permutation(counts.size)
        blocks = []
        for start in range(0, counts.size, self.clients):
            group = order[start : start + self.clients]
            schedule = fixed_schedule(counts[group], batch_size)
            block = np.zeros((schedule.shape[0], counts.size), dtype=np.int64)
            block[:, group] = schedule
            blocks.append(block)
        return np.vstack(blocks)

    def get_config(self) -> dict[str, object]:
        """Return ``{"id": "fixed", "clients": C, "drop_last": D}``."""
        return {"id": self.sampler_id, "clients": self.clients, "drop_last": self.drop_last}
