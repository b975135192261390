"""Largest-value selection shared by the sparsifying codecs."""

from __future__ import annotations

import numpy as np
import torch


def kth_largest(rows: np.ndarray, k: int) -> np.ndarray:
    """Return the ``k``-th largest value of each row of a 2-D array, shape ``(rows, 1)``.

    ``torch.topk`` is used because it stays fast on the many equal values that
    ReLU and max-pool outputs hold, where ``np.partition`` degrades.
    """
    top = torch.from_numpy(np.ascontiguousarray(rows)).topk(k, dim=1, sorted=False).values
    return top.min(dim=1, keepdim=True).values.numpy()


def largest_positions(values: np.ndarray, k: int) -> np.ndarray:
    """Return the ascending flat positions of the ``k`` largest entries of 1-D ``values``.

    Among equal values at the cut-off, lower positions win.
    """
    if k == 0:
        return np.empty(0, dtype=np.int64)
    cutoff = kth_largest(values.reshape(1, -1), k)[0, 0]
    keep = values > cutoff
    ties = np.flatnonzero(values == cutoff)[: k - int(np.count_nonzero(keep))]
    keep[ties] = True
    return np.flatnonzero(keep)
