"""Largest-magnitude selection shared by the sparsifying codecs.

A long row is searched for its ``k`` largest magnitudes in one pass, the pass that checks the
tensor (`finite_flat_candidates`): a strided sample of the row gives a ``bound`` that at
least ``k`` entries very likely reach, and the pass collects the positions of the entries at or
above it (the candidates). When at least ``k`` entries reach ``bound``, the ``k``-th largest
magnitude is at least ``bound``, so every entry of the top ``k`` is a candidate and the ``k``-th
largest candidate is the ``k``-th largest entry: the result is exact whatever the sample. When
fewer reach it (a sample that misleads: rare, the bound has a four-sigma margin), the whole row
is searched instead.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from flwr_split.codecs.blocks import finite_flat, float32_flat, require_finite_ends
from flwr_split.codecs.threads import run_all, spans

SAMPLED = 2**16
"""Entries sampled (every ``n // SAMPLED``-th) to estimate the bound of a long row."""

MIN_SHARE = 8
"""A row is sampled only if it has at least ``MIN_SHARE * k`` entries (and `SAMPLED` * 4)."""

SCAN = 2**17
"""Entries per block of the checking pass (512 KiB of float32 and the block's flags, in L2)."""


class Candidates(NamedTuple):
    """Entries of a row that may be in its top ``k`` (`finite_flat_candidates`).

    ``positions`` are ascending flat positions, ``values`` the entries there (gathered by the
    checking pass while each block is in cache).
    """

    positions: np.ndarray
    values: np.ndarray


def kth_largest(rows: np.ndarray, k: int) -> np.ndarray:
    """Return the ``k``-th largest value of each row of a 2-D array, shape ``(rows, 1)``.

    ``torch.topk`` is used because it stays fast on the many equal values that
    ReLU and max-pool outputs hold, where ``np.partition`` degrades. When ``k`` is more
    than half a row, the ``(width - k + 1)``-th smallest (the same value) is searched.
    """
    rows = np.ascontiguousarray(rows)
    smallest = rows.shape[1] - k + 1
    if smallest < k:
        top = torch.from_numpy(rows).topk(smallest, dim=1, largest=False, sorted=False)
        return top.values.numpy().max(axis=1, keepdims=True)
    top = torch.from_numpy(rows).topk(k, dim=1, sorted=False).values.numpy()
    return top.min(axis=1, keepdims=True)


def sampled_bound(flat: np.ndarray, k: int) -> float | None:
    """Return a magnitude that about ``1.2 k`` entries of ``flat`` reach, or None: search all.

    The ``r``-th largest magnitude of a strided sample of ``s`` entries, with ``r`` four
    binomial standard deviations above the ``mu = s k / n`` sampled entries expected in the
    top ``k``: fewer than ``k`` entries reach it only if the sample holds more than ``r`` of
    the top ``k``. None when ``k == 0`` or the row is too short to prune
    (`MIN_SHARE`); NaN if the sample holds NaN.
    """
    n = flat.size
    if k == 0 or n < max(MIN_SHARE * k, 4 * SAMPLED):
        return None
    sample = np.abs(flat[:: n // SAMPLED])
    expected = sample.size * k / n
    rank = min(sample.size, math.ceil(expected + 4 * math.sqrt(expected)) + 8)
    return float(kth_largest(sample.reshape(1, -1), rank)[0, 0])


def finite_flat_candidates(
    tensor: torch.Tensor, k: int
) -> tuple[np.ndarray, float, float, Candidates | None]:
    """`finite_flat` of ``tensor`` plus the entries that may be in its top ``k`` magnitudes.

    One blocked pass, one span per thread (`threads.run_all`): each block's minimum, and the
    positions and values of its entries of magnitude at or above `sampled_bound` (``b >=
    bound``, or also ``b <= -bound`` in a block with negative values). Every entry at or
    above the bound is a candidate, so the highest value is the candidates' highest unless
    none of them reaches it (then, or without a bound, a pass of its own finds it).

    Returns
    -------
    tuple
        The flat float32 values (may share memory with ``tensor``: read only), the lowest
        and highest value, and the `Candidates`: a superset of the top ``k`` magnitudes, or
        None (no bound, or fewer than ``k`` reach it).

    Raises
    ------
    CodecError
        If ``tensor`` is not a float tensor or holds NaN or inf (as `finite_flat`).
    """
    flat = float32_flat(tensor)
    bound = sampled_bound(flat, k)
    if bound is None:
        return (*finite_flat(tensor), None)
    scans = run_all([(_scan, flat, bound, *span) for span in spans(flat.size, SCAN)])
    lowest = float(np.array([low for low, _, _ in scans]).min())  # NaN propagates, as in numpy
    positions = np.concatenate([found for _, found, _ in scans])
    values = np.concatenate([kept for _, _, kept in scans])
    highest = float(values.max()) if values.size else -math.inf
    if highest < bound:  # only negative candidates (or none): the highest value is elsewhere
        highest = float(flat.max())
    require_finite_ends(tensor, lowest, highest)
    return flat, lowest, highest, Candidates(positions, values) if positions.size >= k else None


def _scan(
    flat: np.ndarray, bound: float, start: int, stop: int
) -> tuple[float, np.ndarray, np.ndarray]:
    """Run the checking pass over ``flat[start:stop]``, `SCAN` values at a time.

    Returns the span's lowest value and the ascending positions (in ``flat``) and values of
    its entries of magnitude at or above ``bound``.
    """
    lows = np.empty(-(-(stop - start) // SCAN), np.float32)
    hits, found, kept = np.empty(min(SCAN, stop - start), bool), [], []
    for index, first in enumerate(range(start, stop, SCAN)):
        block = flat[first : min(first + SCAN, stop)]
        hit = hits[: block.size]
        lows[index] = block.min()
        np.greater_equal(block, bound, out=hit)
        if lows[index] < 0:
            hit |= block <= -bound
        at = np.flatnonzero(hit)
        kept.append(np.take(block, at))
        found.append(at + first)
    return lows.min(), np.concatenate(found), np.concatenate(kept)


def largest_positions(
    values: np.ndarray, k: int, candidates: Candidates | None = None, absolute: bool = False
) -> np.ndarray:
    """Return the ascending flat positions of the ``k`` largest entries of 1-D ``values``.

    Among equal values at the cut-off, lower positions win.

    Parameters
    ----------
    values : np.ndarray
        1-D float array, no NaN.
    k : int
        Entries to keep, ``0 <= k <= values.size``.
    candidates : Candidates, optional
        Entries that include the ``k`` largest (from `finite_flat_candidates`, at least
        ``k`` of them): only they are searched.
    absolute : bool, default False
        Rank the entries by magnitude.
    """
    return largest_entries(values, k, candidates, absolute)[0]


def largest_entries(
    values: np.ndarray, k: int, candidates: Candidates | None = None, absolute: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Return `largest_positions` and the ranked values there (magnitudes if ``absolute``).

    The values come from the search itself, so no second gather from ``values`` is needed.
    """
    if k == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=values.dtype)
    if candidates is None:
        magnitudes = np.abs(values) if absolute else values
        cutoff = kth_largest(magnitudes.reshape(1, -1), k)[0, 0]
        positions = np.flatnonzero(magnitudes >= cutoff)
        kept_values = magnitudes[positions]
    else:
        chosen = np.abs(candidates.values) if absolute else candidates.values
        if chosen.dtype == np.float32 and values.size <= 2**32:
            return _largest_keys(chosen, candidates.positions, k)
        cutoff = kth_largest(chosen.reshape(1, -1), k)[0, 0]
        kept = chosen >= cutoff
        positions, kept_values = candidates.positions[kept], chosen[kept]
    surplus = positions.size - k
    if surplus:  # more entries equal the cut-off than fit: drop the highest tied positions
        tied = np.flatnonzero(kept_values == cutoff)
        dropped = tied[tied.size - surplus :]
        positions, kept_values = np.delete(positions, dropped), np.delete(kept_values, dropped)
    return positions, kept_values


def _largest_keys(
    chosen: np.ndarray, positions: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the ``k`` of ascending ``positions`` (< ``2**32``) of the largest float32 ``chosen``.

    Each entry gets a distinct 64-bit key, larger for a larger value and, among equal
    values, for a lower position: the value's bits made to order as the value (``-0.0`` as
    ``0.0``) above the position counted down from ``2**32 - 1``. The ``k``-th largest key
    (`np.partition`, fast here because no two keys tie) is the cut: exactly ``k`` keys reach
    it, the same entries as the cut-off and tie rule of `largest_positions`. Returns those
    positions and their values.
    """
    bits = (chosen + np.float32(0)).view(np.int32)  # adding 0 turns -0.0 into 0.0
    halves = np.empty((bits.size, 2), "<u4")  # (low, high) word of each little-endian key
    order = halves[:, 1]
    np.right_shift(bits, 31, out=order.view(np.int32))  # all ones for a negative value, else 0
    np.bitwise_or(order, np.uint32(2**31), out=order)
    np.bitwise_xor(order, bits.view(np.uint32), out=order)  # negatives flipped, others on top
    np.invert(positions, out=halves[:, 0], casting="unsafe")  # 2**32 - 1 - position
    keys = halves.view("<u8").reshape(-1)
    cut = np.partition(keys, keys.size - k)[keys.size - k]
    kept = keys >= cut
    return positions[kept], chosen[kept]


def row_top_positions(
    mag: np.ndarray, k: int, candidates: Candidates | None
) -> tuple[np.ndarray, np.ndarray]:
    """Return the flat positions of the ``k`` largest entries of each row, and ``T``.

    Positions are ascending; among equal values at the cut-off, lower positions
    win. ``T`` (shape ``(rows,)``, float64) is the smallest kept value of each
    row, zero when ``k == 0``. A single row is searched among its ``candidates``
    (`largest_entries`, whose kept values give ``T`` without a second gather).
    """
    rows, width = mag.shape
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(rows)
    if rows == 1:
        positions, kept = largest_entries(mag[0], k, candidates)
        return positions, kept.min(keepdims=True).astype(np.float64)
    cutoff = kth_largest(mag, k)
    positions = np.flatnonzero(mag >= cutoff)
    if positions.size > rows * k:  # more entries equal the cut-off than fit
        row = positions // width
        tie = mag.reshape(-1)[positions] == cutoff[row, 0]
        ties = np.bincount(row[tie], minlength=rows)
        spare = k - (np.bincount(row, minlength=rows) - ties)  # ties that fit per row
        rank = np.cumsum(tie) - (np.cumsum(ties) - ties)[row]  # 1-based among the row's ties
        positions = positions[~tie | (rank <= spare[row])]
    return positions, cutoff[:, 0].astype(np.float64)
