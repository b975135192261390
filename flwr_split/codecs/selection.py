"""Largest-value selection shared by the sparsifying codecs."""

from __future__ import annotations

import numpy as np
import torch

MIN_GROUP = 8
"""Smallest group of entries whose maxima `kth_largest` uses to prune a single row."""


def kth_largest(rows: np.ndarray, k: int) -> np.ndarray:
    """Return the ``k``-th largest value of each row of a 2-D array, shape ``(rows, 1)``.

    ``torch.topk`` is used because it stays fast on the many equal values that
    ReLU and max-pool outputs hold, where ``np.partition`` degrades. A single
    row is first pruned to the entries that can be among its ``k`` largest
    (see `_prune`), so ``topk`` runs on a few hundred values instead of all.
    """
    rows = np.ascontiguousarray(rows)
    if rows.shape[0] == 1:
        rows = _prune(rows[0], k)[None, :]
    top = torch.from_numpy(rows).topk(k, dim=1, sorted=False).values.numpy()
    return top.min(axis=1, keepdims=True)


def _prune(values: np.ndarray, k: int) -> np.ndarray:
    """Return the entries of 1-D ``values`` at or above a lower bound of its ``k``-th largest.

    The ``n`` entries are split into ``n / g`` strided groups of ``g``, ``g`` the
    largest power of two that divides ``n`` with ``n / g >= k``. The group maxima
    are ``k`` or more distinct entries, so their ``k``-th largest is at most the
    ``k``-th largest of ``values``: every entry of the top ``k`` is kept, and the
    ``k``-th largest of the kept entries is the same value. Groups smaller than
    `MIN_GROUP` prune too little to pay off; ``values`` is then returned whole.
    """
    spread = 1 << (values.size // k).bit_length() >> 1  # largest power of two <= n / k, or 0
    group = min(values.size & -values.size, spread)
    if group < MIN_GROUP:
        return values
    maxima = torch.from_numpy(values.reshape(group, -1).max(axis=0))
    bound = maxima.topk(k, sorted=False).values.numpy().min()
    return values[values >= bound]


def largest_positions(values: np.ndarray, k: int) -> np.ndarray:
    """Return the ascending flat positions of the ``k`` largest entries of 1-D ``values``.

    Among equal values at the cut-off, lower positions win.
    """
    if k == 0:
        return np.empty(0, dtype=np.int64)
    cutoff = kth_largest(values.reshape(1, -1), k)[0, 0]
    positions = np.flatnonzero(values >= cutoff)  # one pass over values
    surplus = positions.size - k
    if surplus:  # more entries equal the cut-off than fit: drop the highest tied positions
        tied = np.flatnonzero(values[positions] == cutoff)
        positions = np.delete(positions, tied[tied.size - surplus :])
    return positions
