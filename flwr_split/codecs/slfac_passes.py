"""SL-FAC's passes over all coefficients: numpy, or optional numba kernels (the ``fast`` extra).

Each kernel fuses passes that the numpy path runs one after the other over the whole
tensor and computes every value with the same IEEE operations in the same order, so
payload and decoded bytes are the numpy path's bit for bit
(``tests/codecs/test_slfac_passes.py``):

- `band_statistics`: the extremes and the float64 energy of each ``(channel, position)``
  over the batch (energy summed block of samples by block), read straight from the
  transform's output in its own order (`dct.Coefficients`) and only then, as ``(C, P)``
  tables, put in band order;
- `Compiled.pack_components`: each channel's codes
  ``clip(rint((v - lo) / step), 0, levels)`` in float64 (`blocks.quantize_blocks` with
  ``exact=True``), computed over each plane in storage order (contiguous, so the
  arithmetic vectorizes; once per sent component of the channel), gathered into band
  order as bytes and written into their `bitpack.pack_bits` bytes;
- `Compiled.unpack_components`: each channel's bytes unpacked, and every position of each
  plane, in storage order, looked up in its component's decoding table
  (`blocks.decoding_table`; 0.0 for a component not sent), checking that the padding bits
  are zero.

The kernels (`flwr_split.codecs.slfac_numba`) run channel by channel on
`torch.get_num_threads` threads: they release the GIL. On ``32 x 32`` planes they also
transform (`slfac_lee`: the same float32 operations as `dct.coefficients` there): the
statistics kernel transforms each plane and reads it while in cache, and the decoding
kernel inverse-transforms each plane it writes, so no torch product runs and each thread
works on its own channels.

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
from flwr_split.codecs.dct import (
    Coefficients,
    coefficients,
    fresh_buffer,
    planes_from_coefficients,
)
from flwr_split.codecs.minmax import dequantize
from flwr_split.codecs.segments import segments_nbytes
from flwr_split.codecs.slfac_layout import ComponentLayout
from flwr_split.codecs.slfac_lee import uses_lee
from flwr_split.codecs.threads import run_all

MIN_VALUES = 2**16
"""Tensors of fewer values take the numpy path: there a kernel's call costs more than it saves."""


NO_VALUES = np.zeros(0, np.float32)
"""An empty float32 array: the kernels' "no source" / "no planes"."""


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

    def analyse(self, planes: torch.Tensor) -> tuple[Coefficients, tuple[np.ndarray, ...]]:
        """Return the coefficients of float32 ``(B, C, H, W)`` ``planes`` and `band_statistics`.

        The coefficients are on this thread's `dct.scratch` (valid until its next transform).
        """
        batch, channels, height, width = planes.shape
        if not uses_lee(height, width):
            coeffs = coefficients(planes, reuse=True)
            return coeffs, band_statistics(coeffs, self)
        coeffs = Coefficients.empty((channels, batch, height * width), height, width)
        source = planes.contiguous().numpy().reshape(-1)
        return coeffs, band_statistics(coeffs, self, source)

    def decode_planes(
        self,
        packed: np.ndarray,
        layout: ComponentLayout,
        ranges: tuple[np.ndarray, np.ndarray, np.ndarray],
        height: int,
        width: int,
    ) -> torch.Tensor:
        """Return fresh ``(B, C, H, W)`` planes from the ``codes`` payload ``packed``.

        ``ranges`` are `Quantized`'s ``bits``, ``lo`` and ``hi`` over all components.
        """
        batch, channels = layout.batch, layout.low.size
        shape = (channels, batch, height * width)
        if not uses_lee(height, width):
            coeffs = Coefficients.empty(shape, height, width)
            self.unpack_components(packed, layout, *ranges, coeffs)
            return planes_from_coefficients(coeffs, height, width)
        planes = fresh_buffer(batch, channels, height, width)
        target = Coefficients.laid_out(NO_VALUES, shape, height, width)
        self.unpack_components(packed, layout, *ranges, target, planes.numpy().reshape(-1))
        return planes

    def pack_components(
        self,
        coeffs: Coefficients,
        layout: ComponentLayout,
        bits: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> np.ndarray:
        """Return the ``codes`` payload: every sent component of ``coeffs`` quantized and packed.

        ``bits``, ``lo`` and ``hi`` are `Quantized`'s arrays over all components. Each
        channel's two components are one task.
        """
        levels = 2.0**bits - 1
        span = hi - lo
        step = np.divide(span, levels, out=np.ones_like(span), where=(span > 0) & (levels > 0))
        grids = np.stack([lo, step, levels], 1).reshape(-1, 2, 3)
        packed = np.empty(int(segments_nbytes(bits, layout.counts).sum()), np.uint8)
        strides = coeffs.sample_stride, coeffs.channel_stride
        run_all(
            [
                (self.kernels.quantize_pack, coeffs.values, strides, coeffs.perm, part)
                + (grids[part[0]],)
                + (widths, streams, _codes_like(widths))
                for part, widths, streams in _channel_streams(layout, bits, packed)
            ]
        )
        return packed

    def unpack_components(
        self,
        packed: np.ndarray,
        layout: ComponentLayout,
        bits: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        target: Coefficients,
        planes: np.ndarray = NO_VALUES,
    ) -> None:
        """Invert `pack_components` up to quantization, writing every coefficient of ``target``.

        Components not sent decode to zeros. With flat ``planes`` (32 x 32), the
        coefficients are inverse-transformed into them instead (``target`` gives the layout).

        Raises
        ------
        CodecError
            If a component's padding bits are set.
        """
        tables = decoding_tables(bits, lo, hi)
        strides = target.sample_stride, target.channel_stride
        tasks = [
            (self.kernels.unpack_lookup, streams, widths)
            + (tuple(tables.get(2 * part[0] + k, NOT_SENT) for k in (0, 1)), part, strides)
            + (target.rank, target.values, _codes_like(widths), planes)
            for part, widths, streams in _channel_streams(layout, bits, packed)
        ]
        if not all(run_all(tasks)):
            raise CodecError("padding bits after the last code are not zero")


NOT_SENT = np.zeros(1, np.float32)
"""The decoding table of a component not sent: its coefficients decode to 0."""


def _channel_streams(
    layout: ComponentLayout, bits: np.ndarray, packed: np.ndarray
) -> list[tuple[tuple[int, int, int], tuple[int, int], tuple[np.ndarray, np.ndarray]]]:
    """Cut the ``codes`` payload ``packed`` into each channel's two component streams.

    ``bits`` are 0 for components not sent (and empty ones). Returns per channel
    ``((channel, samples, low), (low bits, high bits), (low stream, high stream))``.
    """
    ends = np.cumsum(segments_nbytes(bits, layout.counts)).tolist()
    starts, widths = [0, *ends[:-1]], bits.tolist()
    return [
        (
            (channel, layout.batch, low),
            (widths[2 * channel], widths[2 * channel + 1]),
            tuple(packed[starts[g] : ends[g]] for g in (2 * channel, 2 * channel + 1)),
        )
        for channel, low in enumerate(layout.low.tolist())
    ]


def _codes_like(widths: tuple[int, int]) -> np.ndarray:
    """Return an empty array of a channel's code type: ``uint8`` to 8 bits, else ``int32``."""
    return np.empty(0, np.uint8 if max(widths) <= 8 else np.int32)


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


def kernels_for(values: int) -> Compiled | None:
    """Return the `Compiled` passes for a tensor of ``values`` values, or None for numpy's."""
    compiled = kernels() if values >= MIN_VALUES else None
    return None if compiled is None else Compiled(compiled)


def band_statistics(
    coeffs: Coefficients, compiled: Compiled | None, source: np.ndarray = NO_VALUES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the extremes and the energy of each ``(channel, band position)`` over the batch.

    ``(C, P)`` float32 minima and maxima (NaN or inf show in them or in the energy) and
    float64 sums of squares, samples summed by blocks of about `BLOCK` values, each
    block's sum added in turn. Without ``compiled``, ``coeffs`` must be band-ordered
    and channel-major (`dct.channel_bands`). With flat ``(B, C, 32, 32)`` planes ``source``
    (``compiled`` only), their transform is written into ``coeffs`` first, plane by plane.
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
            + (lows, highs, pooled, source)
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
