"""Batch deviation: how far a union batch's class mix is from the pooled training data's."""

from __future__ import annotations

import numpy as np


def class_shares(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the fraction of each class among ``labels``."""
    return shares_of_counts(np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes))


def shares_of_counts(counts: np.ndarray) -> np.ndarray:
    """Return per-class counts as fractions of their total (zeros if there are none)."""
    return counts / max(1, counts.sum())


def batch_deviation(batch_shares: np.ndarray, pooled_shares: np.ndarray) -> dict[str, float]:
    """Distances between a batch's class shares and the pooled ones.

    Parameters
    ----------
    batch_shares, pooled_shares : np.ndarray
        Class distributions (each sums to 1) of the batch and of the pooled
        training data.

    Returns
    -------
    dict[str, float]
        ``"l1"``: sum of absolute differences, in [0, 2] (twice the total
        variation; the metric of the paper's code); ``"l2"``: Euclidean
        distance; ``"max"``: largest absolute difference.
    """
    diff = np.abs(np.asarray(batch_shares, float) - np.asarray(pooled_shares, float))
    return {
        "l1": float(diff.sum()),
        "l2": float(np.sqrt((diff**2).sum())),
        "max": float(diff.max()),
    }
