"""``plugin_turns``: clients take turns, one client's batch per step."""

from __future__ import annotations

import numpy as np

from flwr_split.sampling import Sampler
from flwr_split.sampling.base import check_counts


class Turns(Sampler):
    """Every step takes up to ``batch_size`` samples of one client, clients in index order."""

    sampler_id = "plugin_turns"

    def plan(self, counts: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
        """Plan the epoch: client 0 until it is empty, then client 1, ... (no randomness)."""
        counts = check_counts(counts, batch_size)
        plan = []
        for client, count in enumerate(counts):
            for start in range(0, count, batch_size):
                step = np.zeros(counts.size, np.int64)
                step[client] = min(batch_size, count - start)
                plan.append(step)
        return np.array(plan, np.int64).reshape(-1, counts.size)
