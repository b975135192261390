"""SL-FAC's passes over all coefficients: numpy, or optional numba kernels (the ``fast`` extra).

Each kernel fuses passes that the numpy path runs one after the other over the whole
tensor and computes every value with the same IEEE operations in the same order, so
payload and decoded bytes are the numpy path's bit for bit
(``tests/codecs/test_slfac_passes.py``):

- `band_statistics`: the extremes and the float64 energy of each ``(channel, position)``
  over the batch (energy summed block of samples by block), read straight from the
  transform's output in its own order (`dct.Coefficients`) and only then, as ``(C, P)``
  tables, put in band order;
- `Compiled.pack_components`: each component's codes
  ``clip(rint((v - lo) / step), 0, levels)`` in float64 (`blocks.quantize_blocks` with
  ``exact=True``) written straight into their `bitpack.pack_bits` bytes, chunk by chunk
  in cache, read from the transform's output as above;
- `Compiled.unpack_components`: each component's bytes read, looked up in its decoding
  table (`blocks.decoding_table`) and written where the inverse transform reads them,
  checking that the padding bits are zero.

The kernels (`flwr_split.codecs.slfac_numba`) run component by component (channel by
channel for the statistics) on `torch.get_num_threads` threads: they release the GIL.

numba is imported, and the kernels loaded or compiled, on first use only (`kernels`), so importing
the codecs stays cheap; the machine code is cached on disk (``cache=True``), so a fresh
process loads it instead of compiling (docs/slfac.md gives both costs). Without numba,
or with ``FLWR_SPLIT_NUMBA=0``, SL-FAC runs the numpy path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from types import ModuleType

import numpy as np
import torch

from flwr_split.codecs.base import CodecError
from flwr_split.codecs.blocks import BLOCK, decoding_table
from flwr_split.codecs.dct import Coefficients
from flwr_split.codecs.minmax import dequantize
from flwr_split.codecs.segments import segments_nbytes
from flwr_split.codecs.slfac_layout import ComponentLayout
from flwr_split.codecs.threads import run_all

MIN_VALUES = 2**16
"""Tensors of fewer values take the numpy path: there a kernel's call costs more than it saves."""


@cache
def kernels() -> ModuleType | None:
    """Return the compiled kernels' module, or None without numba or with ``FLWR_SPLIT_NUMBA=0``."""
    if os.environ.get("FLWR_SPLIT_NUMBA", "1") == "0":
        return None
    try:
        from flwr_split.codecs import slfac_numba
    except ImportError:
        return None
    return slfac_numba


@dataclass(frozen=True)
class Compiled:
    """SL-FAC's passes through the numba `kernels`, on `torch.get_num_threads` threads."""

    kernels: ModuleType

    def pack_components(
        self,
        coeffs: Coefficients,
        layout: ComponentLayout,
        bits: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> np.ndarray:
        """Return the ``codes`` payload: every sent component of ``coeffs`` quantized and packed.

        ``bits``, ``lo`` and ``hi`` are `Quantized`'s arrays over all components.
        """
        sent = bits > 0
        ends = np.cumsum(segments_nbytes(bits[sent], layout.counts[sent])).tolist()
        packed = np.empty(ends[-1] if ends else 0, np.uint8)
        strides = coeffs.sample_stride, coeffs.channel_stride
        tasks, start = [], 0
        for end, g in zip(ends, np.flatnonzero(sent).tolist(), strict=True):
            levels = 2 ** int(bits[g]) - 1
            span = float(hi[g] - lo[g])
            grid = float(lo[g]), span / levels if span > 0 else 1.0, float(levels)
            args = coeffs.values, strides, coeffs.perm, _part(layout, g), grid, int(bits[g])
            tasks.append(
                (self.kernels.quantize_pack, *args, packed[start:end], self._scratch(g, bits))
            )
            start = end
        run_all(tasks)
        return packed

    def unpack_components(
        self,
        packed: np.ndarray,
        layout: ComponentLayout,
        bits: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        target: Coefficients,
    ) -> None:
        """Invert `pack_components` up to quantization, writing the coefficients into ``target``.

        Positions of components not sent are left as they are.

        Raises
        ------
        CodecError
            If a component's padding bits are set.
        """
        sent = bits > 0
        ends = np.cumsum(segments_nbytes(bits[sent], layout.counts[sent])).tolist()
        strides = target.sample_stride, target.channel_stride
        tasks, start = [], 0
        tables = decoding_tables(bits, lo, hi)
        for end, g in zip(ends, np.flatnonzero(sent).tolist(), strict=True):
            width = int(bits[g])
            args = packed[start:end], width, tables[g], _part(layout, g), strides, target.perm
            tasks.append((self.kernels.unpack_lookup, *args, target.values, self._scratch(g, bits)))
            start = end
        if not all(run_all(tasks)):
            raise CodecError("padding bits after the last code are not zero")

    def _scratch(self, component: int, bits: np.ndarray) -> np.ndarray:
        """Return a kernel's code buffer for ``component`` (uint8 to 8 bits, else int32)."""
        return np.empty(self.kernels.CHUNK, np.uint8 if bits[component] <= 8 else np.int32)


def decoding_tables(bits: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> dict[int, np.ndarray]:
    """Return `blocks.decoding_table` of every sent component, by component index.

    Up to 8 bits all tables come from one broadcast `minmax.dequantize` (the same float64
    operations per entry, so the same values; a narrower component's table is longer than
    its codes need); wider components get one call each.
    """
    sent = np.flatnonzero(bits > 0)
    if not sent.size or int(bits[sent].max()) > 8:
        return {g: decoding_table(lo[g], hi[g], 2 ** int(bits[g]) - 1) for g in sent.tolist()}
    levels = torch.from_numpy(2.0 ** bits[sent] - 1)[:, None]
    codes = torch.arange(int(levels.max()) + 1, dtype=torch.float64).expand(sent.size, -1)
    ends = (torch.from_numpy(array[sent])[:, None] for array in (lo, hi))
    tables = dequantize(codes.contiguous(), *ends, levels).to(torch.float32).numpy()
    return dict(zip(sent.tolist(), tables, strict=True))


def _part(layout: ComponentLayout, component: int) -> tuple[int, int, int, int]:
    """``(channel, samples, first, stop)`` band positions of a component (`_quantize_pack`)."""
    channel, high = divmod(component, 2)
    low = int(layout.low[channel])
    first, stop = (low, layout.positions) if high else (0, low)
    return channel, layout.batch, first, stop


def kernels_for(values: int) -> Compiled | None:
    """Return the `Compiled` passes for a tensor of ``values`` values, or None for numpy's."""
    compiled = kernels() if values >= MIN_VALUES else None
    return None if compiled is None else Compiled(compiled)


def band_statistics(
    coeffs: Coefficients, compiled: Compiled | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the extremes and the energy of each ``(channel, band position)`` over the batch.

    ``(C, P)`` float32 minima and maxima (NaN or inf show in them or in the energy) and
    float64 sums of squares, samples summed by blocks of about `BLOCK` values, each
    block's sum added in turn. Without ``compiled``, ``coeffs`` must be band-ordered
    and channel-major (`dct.channel_bands`).
    """
    channels, batch, positions = coeffs.shape
    pooled = np.zeros((channels, positions))
    rows = max(1, BLOCK // max(pooled.size, 1))
    if compiled is None:
        bands = coeffs.values.reshape(coeffs.shape)
        for start in range(0, batch, rows):
            pooled += np.square(bands[:, start : start + rows], dtype=np.float64).sum(1)
        return bands.min(1), bands.max(1), pooled
    lows, highs = np.empty((2, channels, positions), np.float32)
    strides = coeffs.sample_stride, coeffs.channel_stride
    chunks = np.array_split(np.arange(channels), torch.get_num_threads())
    kernel = compiled.kernels.statistics
    run_all(
        [
            (kernel, coeffs.values, strides, positions, (c[0], c[-1] + 1), batch, rows)
            + (lows, highs, pooled)
            for c in chunks
            if c.size
        ]
    )
    if not coeffs.natural:
        return lows, highs, pooled
    return lows[:, coeffs.perm], highs[:, coeffs.perm], pooled[:, coeffs.perm]


def sent_parts(counts: np.ndarray, sent: np.ndarray) -> Iterator[tuple[int, slice]]:
    """Yield each sent component and its slice of the wire stream, in wire order."""
    ends = np.cumsum(np.where(sent, counts, 0)).tolist()
    for g in np.flatnonzero(sent).tolist():
        yield g, slice(ends[g] - int(counts[g]), ends[g])
