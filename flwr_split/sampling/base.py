"""Sampler interface: plan an epoch as a schedule of per-client sample counts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np


class Sampler(ABC):
    """Plans which clients send how many samples at each step of an epoch.

    ``plan`` returns ``n`` of shape ``(steps, clients)``: client ``k`` sends its
    next ``n[t, k]`` samples at step ``t``. Every planner uses each sample
    exactly once per epoch, ``n.sum(axis=0) == counts``, except
    ``fixed:drop_last=true``, which skips each client's partial last batch.
    """

    sampler_id: ClassVar[str]
    per_client_batch: ClassVar[bool] = False
    """Whether ``batch_size`` is each client's batch (``fixed``) rather than the union batch."""

    @abstractmethod
    def plan(self, counts: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
        """Return the epoch's schedule, an int64 array of shape ``(steps, clients)``.

        Parameters
        ----------
        counts : np.ndarray
            Number of training samples each client holds.
        batch_size : int
            The sampler's batch size (its meaning is the sampler's).
        seed : int
            Seed of any randomness; the same seed gives the same schedule.
        """

    def set_delays(self, delays: np.ndarray | None) -> None:  # noqa: B027 - optional hook
        """Report each client's mean step delay in seconds; samplers that ignore delays do nothing.

        The strategy calls it before every `plan` with the delays it measured in
        the previous epoch (``None`` before the first one).
        """

    def get_config(self) -> dict[str, Any]:
        """Return the sampler's options as plain data, including ``"id"``."""
        return {"id": self.sampler_id}


def check_counts(counts: np.ndarray, batch_size: int) -> np.ndarray:
    """Validate and return ``counts`` as an int64 vector."""
    counts = np.asarray(counts)
    if counts.ndim != 1 or counts.size == 0 or not np.issubdtype(counts.dtype, np.integer):
        raise ValueError("counts must be a non-empty 1-D integer array")
    if (counts < 0).any():
        raise ValueError("counts must be >= 0")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return counts.astype(np.int64)


def plan_offsets(plan: np.ndarray) -> np.ndarray:
    """Return where each step's slices start in the clients' epoch permutations.

    Parameters
    ----------
    plan : np.ndarray
        int64 ``(steps, clients)`` samples per client per step, as `Sampler.plan` returns.

    Returns
    -------
    np.ndarray
        int64 ``(steps + 1, clients)``: row ``t`` is the offset of step ``t``'s
        slice of every client (the samples taken in steps ``0..t-1``); the
        last row is each client's total for the epoch.
    """
    return np.vstack([np.zeros((1, plan.shape[1]), np.int64), np.cumsum(plan, axis=0)])
