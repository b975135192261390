"""Largest-value selection shared by the sparsifying codecs.

A long row is pruned before its ``k`` largest entries are searched: its entries are split into
at least ``k`` groups and ``bound``, the ``k``-th largest of the group maxima, is found. Those
``k`` maxima are distinct entries at or above ``bound``, so the ``k``-th largest entry is at
least ``bound``: every entry of the top ``k`` is among the candidates ``>= bound``, and the
``k``-th largest candidate is the ``k``-th largest entry. The group maxima come from the
pass that checks the tensor (`finite_flat_maxima`), so selection reads the tensor only once
more (for the candidates).
"""

from __future__ import annotations

import numpy as np
import torch

from flwr_split.codecs.blocks import BLOCK, blocks, finite_flat, float32_flat, require_finite_ends

MIN_GROUP = 8
"""Smallest group of entries whose maxima are worth computing to prune a row."""


def kth_largest(rows: np.ndarray, k: int) -> np.ndarray:
    """Return the ``k``-th largest value of each row of a 2-D array, shape ``(rows, 1)``.

    ``torch.topk`` is used because it stays fast on the many equal values that
    ReLU and max-pool outputs hold, where ``np.partition`` degrades.
    """
    rows = np.ascontiguousarray(rows)
    top = torch.from_numpy(rows).topk(k, dim=1, sorted=False).values.numpy()
    return top.min(axis=1, keepdims=True)


def group_size(n: int, k: int) -> int:
    """Return the entries per group for pruning ``n`` entries to their ``k`` largest; 0: none.

    The largest power of two ``g <= n / k`` (so there are at least ``k`` groups), at most
    one block of `flwr_split.codecs.blocks`; 0 when ``k == 0`` or ``g < MIN_GROUP``
    (groups that small prune too little to pay off).
    """
    if k == 0:
        return 0
    group = min(1 << (n // k).bit_length() >> 1, BLOCK)
    return group if group >= MIN_GROUP else 0


def finite_flat_maxima(
    tensor: torch.Tensor, k: int
) -> tuple[np.ndarray, float, float, np.ndarray | None]:
    """`finite_flat` of ``tensor`` plus the largest magnitude of each pruning group.

    One blocked pass: every block's ``b`` entries form ``g = group_size(numel, k)`` rows
    of ``b // g`` entries; each column is a group (its maximum and minimum are taken while
    the block is in cache), and the ``b % g`` entries after them are groups of one. The
    magnitude maximum of a group is its maximum, or ``max(maximum, -minimum)`` when the
    tensor has negative values.

    Returns
    -------
    tuple
        The flat float32 values (may share memory with ``tensor``: read only), the lowest
        and highest value, and the group maxima of the magnitudes (None when ``g`` is 0).

    Raises
    ------
    CodecError
        If ``tensor`` is not a float tensor or holds NaN or inf (as `finite_flat`).
    """
    flat = float32_flat(tensor)
    group = group_size(flat.size, k)
    if not group:
        return (*finite_flat(tensor), None)
    highs, lows = [], []
    for part in blocks(flat.size):
        block = flat[part]
        cut = block.size - block.size % group
        columns = block[:cut].reshape(group, -1)
        highs += [columns.max(axis=0), block[cut:]]
        lows += [columns.min(axis=0), block[cut:]]
    high, low = np.concatenate(highs), np.concatenate(lows)
    lowest, highest = float(low.min()), float(high.max())
    require_finite_ends(tensor, lowest, highest)
    maxima = high if lowest >= 0 else np.maximum(high, -low, out=high)
    return flat, lowest, highest, maxima


def largest_positions(values: np.ndarray, k: int, maxima: np.ndarray | None = None) -> np.ndarray:
    """Return the ascending flat positions of the ``k`` largest entries of 1-D ``values``.

    Among equal values at the cut-off, lower positions win.

    Parameters
    ----------
    values : np.ndarray
        1-D float array, no NaN.
    k : int
        Entries to keep, ``0 <= k <= values.size``.
    maxima : np.ndarray, optional
        The maxima of at least ``k`` disjoint groups covering ``values`` (e.g. from
        `finite_flat_maxima`): only entries at or above their ``k``-th largest are searched.
    """
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if maxima is not None and maxima.size >= k:
        bound = kth_largest(maxima.reshape(1, -1), k)[0, 0]
        candidates = np.flatnonzero(values >= bound)  # the one pass over values
        chosen = values[candidates]
        cutoff = kth_largest(chosen.reshape(1, -1), k)[0, 0]
        kept = chosen >= cutoff
        positions, kept_values = candidates[kept], chosen[kept]
    else:
        cutoff = kth_largest(values.reshape(1, -1), k)[0, 0]
        positions = np.flatnonzero(values >= cutoff)
        kept_values = values[positions]
    surplus = positions.size - k
    if surplus:  # more entries equal the cut-off than fit: drop the highest tied positions
        tied = np.flatnonzero(kept_values == cutoff)
        positions = np.delete(positions, tied[tied.size - surplus :])
    return positions
