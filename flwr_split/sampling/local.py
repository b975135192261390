"""Fixed local sampling baselines: FPLS (proportional local batches) and FLS (equal ones)."""

from __future__ import annotations

import numpy as np

from flwr_split.sampling.base import Sampler, check_counts
from flwr_split.sampling.fixed import fixed_schedule


class FixedProportionalLocal(Sampler):
    """FPLS: client ``k`` sends ``B_k = max(1, round(B * N_k / N))`` samples per step.

    Every client with data left sends ``min(B_k, remaining)`` until all are
    empty, so an epoch lasts ``max_k ceil(N_k / B_k)`` steps (at least
    ``ceil(N / B)``: the step inflation from data depletion), and the union
    batch shrinks as clients run dry. Rounding is numpy's (half to even).
    """

    sampler_id = "fpls"

    def local_batches(self, counts: np.ndarray, batch_size: int) -> np.ndarray:
        """Return each client's local batch ``B_k``."""
        return np.maximum(1, np.round(batch_size * counts / max(1, counts.sum()))).astype(np.int64)

    def plan(self, counts: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
        """Plan the epoch: fixed local batches until every client is empty (no randomness)."""
        counts = check_counts(counts, batch_size)
        return fixed_schedule(counts, self.local_batches(counts, batch_size))


class FixedLocal(FixedProportionalLocal):
    """FLS: every client sends ``B_k = max(1, round(B / K))`` samples per step.

    ``K`` counts the clients that hold data. Otherwise as `FixedProportionalLocal`;
    with ``K > 2B`` every ``B_k`` is 1 and the union batch is ``K > B``.
    """

    sampler_id = "fls"

    def local_batches(self, counts: np.ndarray, batch_size: int) -> np.ndarray:
        """Return the common local batch, repeated per client."""
        holders = max(1, int(np.count_nonzero(counts)))
        return np.full(counts.size, max(1, round(batch_size / holders)), dtype=np.int64)
