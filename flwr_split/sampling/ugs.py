"""Uniform global sampling (UGS): every step's union batch is a uniform draw without replacement."""

from __future__ import annotations

import numpy as np

from flwr_split.sampling.base import Sampler, check_counts


def chunk_sizes(total: int, batch_size: int) -> np.ndarray:
    """Sizes of ``ceil(total / batch_size)`` chunks that differ by at most one (array_split)."""
    steps = -(-total // batch_size)
    if steps == 0:
        return np.zeros(0, dtype=np.int64)
    sizes = np.full(steps, total // steps, dtype=np.int64)
    sizes[: total % steps] += 1
    return sizes


class UniformGlobal(Sampler):
    """Uniform global sampling: shuffle the multiset of client ids, cut it into batches.

    Client ``k``'s id appears ``counts[k]`` times; the shuffled sequence is cut
    into ``T = ceil(N / batch_size)`` consecutive chunks whose sizes are
    ``floor(N / T)`` or ``ceil(N / T)`` (never above ``batch_size``), and
    ``n[t, k]`` counts the ids of ``k`` in chunk ``t``. With each client
    serving a uniform permutation of its samples, the epoch is a uniform
    permutation of the pooled data: each union batch is distributed like a
    centralized batch drawn without replacement. The server needs only the
    clients' sample counts.
    """

    sampler_id = "ugs"

    def plan(self, counts: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
        """Plan the epoch as ``ceil(N / batch_size)`` near-equal uniform batches."""
        counts = check_counts(counts, batch_size)
        slots = np.repeat(np.arange(counts.size), counts)
        np.random.default_rng(seed).shuffle(slots)
        sizes = chunk_sizes(int(counts.sum()), batch_size)
        step_of_slot = np.repeat(np.arange(sizes.size), sizes)
        flat = np.bincount(step_of_slot * counts.size + slots, minlength=sizes.size * counts.size)
        return flat.reshape(sizes.size, counts.size).astype(np.int64)
