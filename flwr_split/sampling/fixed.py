"""Classic parallel SL: every client with data left sends a fixed local batch."""

from __future__ import annotations

import numpy as np

from flwr_split.sampling.base import Sampler, check_counts


class FixedLocalBatch(Sampler):
    """Each client sends ``min(batch_size, remaining)`` samples per step.

    The effective batch is ``K * batch_size`` while all clients have data, and
    an epoch lasts ``max_k ceil(counts[k] / batch_size)`` steps (the tail steps
    hold only the larger clients). No randomness: which samples are sent is
    the client's seeded permutation.
    """

    sampler_id = "fixed"

    def plan(self, counts: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
        """Plan ``ceil(max(counts) / batch_size)`` steps of ``min(batch_size, remaining)``."""
        counts = check_counts(counts, batch_size)
        steps = int(-(-counts.max() // batch_size))
        taken = np.arange(steps)[:, None] * batch_size
        return np.clip(counts[None, :] - taken, 0, batch_size)
