"""numba kernels of SL-FAC's passes (`flwr_split.codecs.slfac_passes`; the ``fast`` extra).

Imported by `slfac_passes.kernels` on first use only. Every value is computed with the
IEEE operations of the numpy path, in its order (no ``fastmath``), so the bytes match.
Compiled code is cached on disk next to this file (``cache=True``) or under
``NUMBA_CACHE_DIR``, so a fresh process loads instead of compiling.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from flwr_split.codecs.slfac_lee import SIDE
from flwr_split.codecs.slfac_lee_forward import forward
from flwr_split.codecs.slfac_lee_inverse import inverse


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
    source: np.ndarray,
) -> None:
    """Extremes and energy of channels ``channels[0]:channels[1]``, in storage order.

    Position ``j`` of channel ``c`` of sample ``b`` is ``values[b * strides[0] + c *
    strides[1] + j]`` (`Coefficients`: the caller maps storage to band order). With
    ``source`` non-empty (32 x 32 planes laid out as ``values``), each plane of ``source``
    is first transformed into its place in ``values`` (`slfac_lee`) and read while in cache.
    ``lows`` and ``highs`` get the float32 minimum and maximum over the samples of each
    ``(channel, position)``; ``pooled`` the float64 sum of squares, samples summed
    ``rows`` at a time, each block's sum (from its first square, in sample order) then
    added to ``pooled``: numpy's order for ``square(block).sum(1)``. Every loop over
    positions reads contiguous values and vectorizes.
    """
    sample_stride, channel_stride = strides
    block = np.empty(positions)
    work = np.empty((2, positions), np.float32)
    for c in range(channels[0], channels[1]):
        low, high, energy = lows[c], highs[c], pooled[c]
        for start in range(0, batch, rows):
            for b in range(start, min(start + rows, batch)):
                base = b * sample_stride + c * channel_stride
                plane = values[base : base + positions]
                if source.size:
                    forward(source[base : base + positions], work[0])
                    _transpose(work[0], work[1])
                    forward(work[1], plane)
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
def quantize_pack(
    values: np.ndarray,
    strides: tuple[int, int],
    perm: np.ndarray,
    part: tuple[int, int, int],
    grid: np.ndarray,
    widths: tuple[int, int],
    outs: tuple[np.ndarray, np.ndarray],
    like: np.ndarray,
) -> None:
    """Quantize one channel's two components and pack each at its width, LSB first.

    ``part = (channel, samples, low)``: band positions ``0..low - 1`` of every sample
    form the low component, the others the high one; band position ``j`` is stored at
    ``perm[j]`` of its plane (`dct.Coefficients`). ``grid`` holds ``(lo, step, levels)``
    of the low and the high component (float64 rows), ``widths`` their bits (0: not sent)
    and ``outs`` their ``ceil(count * bits / 8)`` bytes (the padding bits end zero).
    Each sample's plane is quantized in storage order, contiguously, once per sent
    component (`_quantize`), and the codes of each component's positions are gathered in
    band order into a buffer of ``samples * positions`` integers of ``like``'s type
    (``uint8`` up to 8 bits, the fastest, else ``int32``), the low component's first.
    """
    sample_stride, channel_stride = strides
    channel, samples, low = part
    positions = perm.size
    codes = np.empty(samples * positions, like.dtype)
    planes = np.empty((2, positions), like.dtype)
    for sample in range(samples):
        base = sample * sample_stride + channel * channel_stride
        plane = values[base : base + positions]
        for k in range(2):
            if widths[k]:
                _quantize(plane, grid[k, 0], grid[k, 1], grid[k, 2], planes[k])
        at = sample * low
        for j in range(low):
            codes[at + j] = planes[0, perm[j]]
        at = samples * low + sample * (positions - low) - low
        for j in range(low, positions):
            codes[at + j] = planes[1, perm[j]]
    if widths[0]:
        pack(codes[: samples * low], widths[0], outs[0])
    if widths[1]:
        pack(codes[samples * low : samples * positions], widths[1], outs[1])


@njit(cache=True, nogil=True)
def _quantize(values: np.ndarray, lo: float, step: float, levels: float, codes: np.ndarray) -> None:
    """``codes = clip(rint((values - lo) / step), 0, levels)`` in float64 (vectorized)."""
    for i in range(values.size):  # np.minimum and np.maximum vectorize, min and max do not
        code = np.rint((float(values[i]) - lo) / step)
        codes[i] = np.minimum(np.maximum(code, 0.0), levels)


@njit(cache=True, nogil=True)
def pack(codes: np.ndarray, bits: int, out: np.ndarray) -> None:
    """Write ``codes`` at ``bits`` bits each, LSB first, into ``out`` (`bitpack.pack_bits`).

    Up to 8 bits each eight codes fill ``bits`` whole bytes through one 64-bit word;
    wider codes stream code by code (eight codes end on a byte boundary).
    """
    whole = codes.size // 8
    at = 0
    if bits <= 8:
        for group in range(whole):
            word = 0
            for k in range(8):
                word |= codes[8 * group + k] << (bits * k)
            for k in range(bits):
                out[at + k] = (word >> (8 * k)) & 0xFF
            at += bits
        start = 8 * whole
    else:
        start = 0
    word = filled = 0
    for i in range(start, codes.size):
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
def unpack(packed: np.ndarray, bits: int, codes: np.ndarray) -> bool:
    """Invert `pack` into ``codes``; return False if a padding bit after the last code is set."""
    mask = (1 << bits) - 1
    whole = codes.size // 8 if bits <= 8 else 0
    at = 0
    for group in range(whole):
        word = 0
        for k in range(bits):
            word |= int(packed[at + k]) << (8 * k)
        for k in range(8):
            codes[8 * group + k] = (word >> (bits * k)) & mask
        at += bits
    word = filled = 0
    for i in range(8 * whole, codes.size):
        while filled < bits:
            word |= int(packed[at]) << filled
            filled += 8
            at += 1
        codes[i] = word & mask
        word >>= bits
        filled -= bits
    return word == 0


@njit(cache=True, nogil=True)
def unpack_lookup(
    packed: tuple[np.ndarray, np.ndarray],
    widths: tuple[int, int],
    tables: tuple[np.ndarray, np.ndarray],
    part: tuple[int, int, int],
    strides: tuple[int, int],
    rank: np.ndarray,
    values: np.ndarray,
    like: np.ndarray,
    planes: np.ndarray,
) -> bool:
    """Invert `quantize_pack` up to quantization: write ``table[code]`` at every position.

    A component of width 0 (not sent) gets code 0 (give it a one-entry table of 0.0).
    The codes are unpacked into a buffer of ``like``'s type, as in `quantize_pack`. Each
    sample's plane is written in storage order, contiguously. With ``planes`` non-empty
    (32 x 32 planes laid out as ``values`` would be), each plane is written to a work
    buffer instead and inverse-transformed from there into its place in ``planes``
    (`slfac_lee`); ``values`` is then not used.

    Return False if a component's padding bit after its last code is set, else True.
    """
    sample_stride, channel_stride = strides
    channel, samples, low = part
    positions = rank.size
    high = positions - low
    codes = np.empty(samples * positions, like.dtype)
    low_codes, high_codes = codes[: samples * low], codes[samples * low : samples * positions]
    clean = _unpack_or_zero(packed[0], widths[0], low_codes)
    clean &= _unpack_or_zero(packed[1], widths[1], high_codes)
    low_table, high_table = tables
    work = np.empty((3, positions), np.float32)
    for sample in range(samples):
        base = sample * sample_stride + channel * channel_stride
        out = work[2] if planes.size else values[base : base + positions]
        if high == 0:  # one component: no choice per position
            _lookup(low_table, low_codes[sample * low : (sample + 1) * low], rank, out)
        elif low == 0:
            _lookup(high_table, high_codes[sample * high : (sample + 1) * high], rank, out)
        else:
            at_low, at_high = sample * low, sample * high - low
            for i in range(positions):
                j = rank[i]
                if j < low:
                    out[i] = low_table[low_codes[at_low + j]]
                else:
                    out[i] = high_table[high_codes[at_high + j]]
        if planes.size:
            inverse(out, work[0])
            _transpose(work[0], work[1])
            inverse(work[1], planes[base : base + positions])
    return clean


@njit(cache=True, nogil=True)
def _transpose(plane: np.ndarray, out: np.ndarray) -> None:
    """Write the flat ``SIDE x SIDE`` ``plane`` transposed into ``out`` (`slfac_lee`'s 2nd pass)."""
    for row in range(SIDE):
        for column in range(SIDE):
            out[column * SIDE + row] = plane[row * SIDE + column]


@njit(cache=True, nogil=True)
def _unpack_or_zero(packed: np.ndarray, bits: int, codes: np.ndarray) -> bool:
    """`unpack` at ``bits > 0``; at 0 bits (a component not sent) set every code to 0."""
    if bits:
        return unpack(packed, bits, codes)
    codes[:] = 0
    return True


@njit(cache=True, nogil=True)
def _lookup(table: np.ndarray, codes: np.ndarray, rank: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = table[codes[rank[i]]]``: band-ordered codes to a plane in storage order."""
    for i in range(out.size):
        out[i] = table[codes[rank[i]]]
