"""numba kernels of SL-FAC's passes (`flwr_split.codecs.slfac_passes`; the ``fast`` extra).

Imported by `slfac_passes.kernels` on first use only. Every value is computed with the
IEEE operations of the numpy path, in its order (no ``fastmath``), so the bytes match.
Compiled code is cached on disk next to this file (``cache=True``) or under
``NUMBA_CACHE_DIR``, so a fresh process loads instead of compiling.
"""

from __future__ import annotations

import numpy as np
from numba import njit

CHUNK = 2**12
"""Values a kernel gathers, codes and packs at a time (a multiple of 8; in L1 as float32)."""


@njit(cache=True, nogil=True)
def statistics(
    values: np.ndarray,
    strides: tuple[int, int],
    positions: int,
    channels: tuple[int, int],
    batch: int,
    rows: int,
    lows: np.ndarray,
    highs: np.ndarray,
    pooled: np.ndarray,
) -> None:
    """Extremes and energy of channels ``channels[0]:channels[1]``, in storage order.

    Position ``j`` of channel ``c`` of sample ``b`` is ``values[b * strides[0] + c *
    strides[1] + j]`` (`Coefficients`: the caller maps storage to band order).
    ``lows`` and ``highs`` get the float32 minimum and maximum over the samples of each
    ``(channel, position)``; ``pooled`` the float64 sum of squares, samples summed
    ``rows`` at a time, each block's sum (from its first square, in sample order) then
    added to ``pooled``: numpy's order for ``square(block).sum(1)``. Every loop over
    positions reads contiguous values and vectorizes.
    """
    sample_stride, channel_stride = strides
    block = np.empty(positions)
    for c in range(channels[0], channels[1]):
        low, high, energy = lows[c], highs[c], pooled[c]
        for start in range(0, batch, rows):
            for b in range(start, min(start + rows, batch)):
                base = b * sample_stride + c * channel_stride
                plane = values[base : base + positions]
                if b == 0:
                    low[:] = plane
                    high[:] = plane
                for j in range(positions):  # np.minimum vectorizes, min does not
                    low[j] = np.minimum(plane[j], low[j])
                    high[j] = np.maximum(plane[j], high[j])
                if b == start:
                    for j in range(positions):
                        block[j] = float(plane[j]) * float(plane[j])
                else:
                    for j in range(positions):
                        block[j] += float(plane[j]) * float(plane[j])
            for j in range(positions):
                energy[j] += block[j]


@njit(cache=True, nogil=True)
def _copy_run(
    values: np.ndarray,
    strides: tuple[int, int],
    perm: np.ndarray,
    part: tuple[int, int, int, int],
    at: int,
    chunk: np.ndarray,
    into_values: bool,
) -> None:
    """Copy ``chunk.size`` values of component ``part``, from its ``at``-th on, to ``chunk``.

    With ``into_values``, copy the other way: from ``chunk`` into the component.
    """
    sample_stride, channel_stride = strides
    channel, _, first, stop = part
    sample, j = divmod(at, stop - first)
    j += first
    i = 0
    while i < chunk.size:
        run = min(stop - j, chunk.size - i)
        base = sample * sample_stride + channel * channel_stride
        if into_values:
            for r in range(run):
                values[base + perm[j + r]] = chunk[i + r]
        else:
            for r in range(run):
                chunk[i + r] = values[base + perm[j + r]]
        i += run
        sample, j = sample + 1, first


@njit(cache=True, nogil=True)
def quantize_pack(
    values: np.ndarray,
    strides: tuple[int, int],
    perm: np.ndarray,
    part: tuple[int, int, int, int],
    grid: tuple[float, float, float],
    bits: int,
    out: np.ndarray,
    codes: np.ndarray,
) -> None:
    """Write the codes of one component at ``bits`` bits, LSB first, into ``out``.

    The component ``part = (channel, samples, first, stop)`` holds band positions
    ``first..stop - 1`` of every sample of a channel of `Coefficients` ``values``, read
    sample by sample; ``grid = (lo, step, levels)``. ``out`` holds
    ``ceil(count * bits / 8)`` bytes; the padding bits end zero. Chunks of `CHUNK`
    values are gathered, coded and packed in turn: up to 8 bits each eight codes fill
    ``bits`` whole bytes through one 64-bit word, wider codes stream code by code (a
    chunk of ``8 k`` codes ends on a byte boundary). ``codes`` is a scratch buffer of
    ``min(CHUNK, count)`` integers (``uint8`` up to 8 bits, the fastest, else ``int32``).
    """
    lo, step, levels = grid
    count = part[1] * (part[3] - part[2])
    chunk = np.empty(min(CHUNK, count), values.dtype)
    at = 0
    for start in range(0, count, CHUNK):
        size = min(CHUNK, count - start)
        _copy_run(values, strides, perm, part, start, chunk[:size], False)
        for i in range(size):
            code = np.minimum(np.maximum(np.rint((float(chunk[i]) - lo) / step), 0.0), levels)
            codes[i] = code  # np.minimum and np.maximum vectorize, min and max do not
        whole = size // 8 if bits <= 8 else 0
        for group in range(whole):
            word = 0
            for k in range(8):
                word |= codes[8 * group + k] << (bits * k)
            for k in range(bits):
                out[at + k] = (word >> (8 * k)) & 0xFF
            at += bits
        word = filled = 0
        for i in range(8 * whole, size):
            word |= codes[i] << filled
            filled += bits
            while filled >= 8:
                out[at] = word & 0xFF
                word >>= 8
                filled -= 8
                at += 1
        if filled:
            out[at] = word & 0xFF


@njit(cache=True, nogil=True)
def unpack_lookup(
    packed: np.ndarray,
    bits: int,
    table: np.ndarray,
    part: tuple[int, int, int, int],
    strides: tuple[int, int],
    perm: np.ndarray,
    values: np.ndarray,
    codes: np.ndarray,
) -> bool:
    """Invert `quantize_pack` up to quantization: write ``table[code]`` of each code.

    ``codes`` is a scratch buffer as in `quantize_pack`.

    Return False if a padding bit after the last code is set, else True.
    """
    count = part[1] * (part[3] - part[2])
    chunk = np.empty(min(CHUNK, count), values.dtype)
    mask = (1 << bits) - 1
    at = 0
    word = 0
    for start in range(0, count, CHUNK):
        size = min(CHUNK, count - start)
        whole = size // 8 if bits <= 8 else 0
        for group in range(whole):
            word = 0
            for k in range(bits):
                word |= int(packed[at + k]) << (8 * k)
            for k in range(8):
                codes[8 * group + k] = (word >> (bits * k)) & mask
            at += bits
        word = filled = 0
        for i in range(8 * whole, size):
            while filled < bits:
                word |= int(packed[at]) << filled
                filled += 8
                at += 1
            codes[i] = word & mask
            word >>= bits
            filled -= bits
        for i in range(size):
            chunk[i] = table[codes[i]]
        _copy_run(values, strides, perm, part, start, chunk[:size], True)
    return word == 0
