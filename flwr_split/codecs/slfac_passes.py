"""SL-FAC's passes over all coefficients: numpy, or optional numba kernels (the ``fast`` extra).

Each kernel fuses passes that the numpy path runs one after the other over the whole
tensor and computes every value with the same IEEE operations in the same order, so
payload and decoded bytes are the numpy path's bit for bit
(``tests/codecs/test_slfac_passes.py``):

- `pooled_energy`: the float64 energy of each ``(channel, position)`` over the batch,
  summed block of samples by block;
- `Compiled.pack_components`: each component's codes
  ``clip(rint((v - lo) / step), 0, levels)`` in float64 (`blocks.quantize_blocks` with
  ``exact=True``) written straight into their `bitpack.pack_bits` bytes, with no code array;
- `Compiled.unpack_components`: each component's bytes read and looked up in its decoding
  table (`blocks.decoding_table`) in one pass, checking that the padding bits are zero.

numba is imported, and the kernels compiled, on first use only (`kernels`), so importing
the codecs stays cheap; the machine code is cached on disk (``cache=True``), so a fresh
process loads it instead of compiling (docs/slfac.md gives both costs). Without numba,
or with ``FLWR_SPLIT_NUMBA=0``, SL-FAC runs the numpy path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace

import numpy as np

from flwr_split.codecs.base import CodecError
from flwr_split.codecs.blocks import BLOCK, decoding_table
from flwr_split.codecs.segments import segments_nbytes

MIN_VALUES = 2**16
"""Tensors of fewer values take the numpy path: there a kernel's call costs more than it saves."""


@cache
def kernels() -> SimpleNamespace | None:
    """Return the compiled kernels, or None without numba or with ``FLWR_SPLIT_NUMBA=0``."""
    if os.environ.get("FLWR_SPLIT_NUMBA", "1") == "0":
        return None
    try:
        import numba
    except ImportError:
        return None
    jit = numba.njit(cache=True, nogil=True)
    return SimpleNamespace(
        pooled_energy=jit(_pooled_energy),
        quantize_pack=jit(_quantize_pack),
        unpack_lookup=jit(_unpack_lookup),
    )


@dataclass(frozen=True)
class Compiled:
    """SL-FAC's per-component passes through the numba `kernels`."""

    kernels: SimpleNamespace

    def pack_components(
        self,
        stream: np.ndarray,
        bits: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        counts: np.ndarray,
    ) -> np.ndarray:
        """Return the ``codes`` payload of the float32 wire ``stream`` of the sent components.

        ``bits``, ``lo``, ``hi`` and ``counts`` are `Quantized`'s arrays over all components.
        """
        sent = bits > 0
        ends = np.cumsum(segments_nbytes(bits[sent], counts[sent])).tolist()
        packed = np.empty(ends[-1] if ends else 0, np.uint8)
        for end, (g, part) in zip(ends, sent_parts(counts, sent), strict=True):
            levels = 2 ** int(bits[g]) - 1
            span = float(hi[g] - lo[g])
            step = span / levels if span > 0 else 1.0
            out = packed[end - _nbytes(bits[g], part) : end]
            self.kernels.quantize_pack(stream[part], float(lo[g]), step, levels, int(bits[g]), out)
        return packed

    def unpack_components(
        self,
        packed: np.ndarray,
        bits: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        counts: np.ndarray,
    ) -> np.ndarray:
        """Invert `pack_components` up to quantization: the dequantized float32 wire stream.

        Raises
        ------
        CodecError
            If a component's padding bits are set.
        """
        sent = bits > 0
        stream = np.empty(int(counts[sent].sum()), np.float32)
        start = 0
        for g, part in sent_parts(counts, sent):
            width = int(bits[g])
            size = _nbytes(width, part)
            table = decoding_table(float(lo[g]), float(hi[g]), 2**width - 1)
            if not self.kernels.unpack_lookup(
                packed[start : start + size], width, table, stream[part]
            ):
                raise CodecError("padding bits after the last code are not zero")
            start += size
        return stream


def _nbytes(bits: int, part: slice) -> int:
    return (int(bits) * (part.stop - part.start) + 7) // 8


def kernels_for(values: int) -> Compiled | None:
    """Return the `Compiled` passes for a tensor of ``values`` values, or None for numpy's."""
    compiled = kernels() if values >= MIN_VALUES else None
    return None if compiled is None else Compiled(compiled)


def pooled_energy(coeffs: np.ndarray) -> np.ndarray:
    """Float64 sum of squares of ``(C, B, P)`` float32 ``coeffs`` over the batch: ``(C, P)``.

    Samples are summed by blocks of about `BLOCK` values, each block's sum added in turn.
    """
    pooled = np.zeros((coeffs.shape[0], coeffs.shape[2]))
    rows = max(1, BLOCK // max(pooled.size, 1))
    compiled = kernels_for(coeffs.size)
    if compiled is not None:
        compiled.kernels.pooled_energy(coeffs, rows, pooled)
        return pooled
    for start in range(0, coeffs.shape[1], rows):
        pooled += np.square(coeffs[:, start : start + rows], dtype=np.float64).sum(1)
    return pooled


def sent_parts(counts: np.ndarray, sent: np.ndarray) -> Iterator[tuple[int, slice]]:
    """Yield each sent component and its slice of the wire stream, in wire order."""
    ends = np.cumsum(np.where(sent, counts, 0)).tolist()
    for g in np.flatnonzero(sent).tolist():
        yield g, slice(ends[g] - int(counts[g]), ends[g])


# ---------------------------------------------------------------- numba sources
def _pooled_energy(coeffs, rows, pooled):  # noqa: ANN001, ANN202 (numba source)
    """Add the squares of ``(C, B, P)`` float32 ``coeffs`` over ``B`` into ``(C, P)`` ``pooled``.

    Samples are summed ``rows`` at a time, each block's sum (from its first square, in
    sample order) added to ``pooled``: numpy's order for ``square(block).sum(1)``.
    """
    channels, batch, positions = coeffs.shape
    block = pooled[0].copy()
    for c in range(channels):
        for start in range(0, batch, rows):
            stop = min(start + rows, batch)
            for p in range(positions):
                value = float(coeffs[c, start, p])
                block[p] = value * value
            for b in range(start + 1, stop):
                for p in range(positions):
                    value = float(coeffs[c, b, p])
                    block[p] += value * value
            for p in range(positions):
                pooled[c, p] += block[p]


def _quantize_pack(values, lo, step, levels, bits, out):  # noqa: ANN001, ANN202 (numba source)
    """Write the codes of 1-D float32 ``values`` at ``bits`` bits, LSB first, into ``out``.

    ``out`` holds ``ceil(values.size * bits / 8)`` bytes; the padding bits end zero. Up to
    8 bits, each eight codes fill ``bits`` whole bytes through one 64-bit word; the rest
    (wider codes, the last partial group) streams code by code.
    """
    whole = values.size // 8 if bits <= 8 else 0
    for group in range(whole):
        word = 0
        for j in range(8):
            scaled = (float(values[8 * group + j]) - lo) / step
            word |= int(min(max(np.rint(scaled), 0.0), levels)) << (bits * j)
        for k in range(bits):
            out[bits * group + k] = (word >> (8 * k)) & 0xFF
    word = 0
    filled = 0
    at = bits * whole
    for i in range(8 * whole, values.size):
        scaled = (float(values[i]) - lo) / step
        word |= int(min(max(np.rint(scaled), 0.0), levels)) << filled
        filled += bits
        while filled >= 8:
            out[at] = word & 0xFF
            word >>= 8
            filled -= 8
            at += 1
    if filled:
        out[at] = word & 0xFF


def _unpack_lookup(packed, bits, table, out):  # noqa: ANN001, ANN202 (numba source)
    """Read ``out.size`` codes of ``bits`` bits from ``packed`` into ``out`` as ``table[code]``.

    Groups of eight codes as in `_quantize_pack`. Return False if a padding bit after
    the last code is set, else True.
    """
    mask = (1 << bits) - 1
    whole = out.size // 8 if bits <= 8 else 0
    for group in range(whole):
        word = 0
        for k in range(bits):
            word |= int(packed[bits * group + k]) << (8 * k)
        for j in range(8):
            out[8 * group + j] = table[(word >> (bits * j)) & mask]
    word = 0
    filled = 0
    at = bits * whole
    for i in range(8 * whole, out.size):
        while filled < bits:
            word |= int(packed[at]) << filled
            filled += 8
            at += 1
        out[i] = table[word & mask]
        word >>= bits
        filled -= bits
    return word == 0
