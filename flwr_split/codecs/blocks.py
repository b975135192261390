"""Elementwise codec passes run block by block, so each block stays in cache between passes.

A chain of torch or numpy ops over a whole tensor reads and writes it from memory once per
op and allocates a full-size temporary for each result. Running the chain on one block of
`BLOCK` values at a time, in a reused buffer, costs one memory pass for the chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from flwr_split.codecs.base import CodecError, check_finite, check_float_tensor
from flwr_split.codecs.bitpack import byte_codes, check_packed, lookup, unpack_codes
from flwr_split.codecs.minmax import dequantize

BLOCK = 2**15
"""Values per block: 128 KiB of float32 stays in L2 across the passes over a block, and a
torch op on a block runs on one thread (torch splits only more than 32,768 values), so it
does not wait for a second core that another process holds."""

FLOAT32_SAFE = float(np.finfo(np.float32).max) / 2
"""Largest range ``hi - lo`` and scale `quantize_blocks` compute in float32 (no overflow)."""

FLOAT32_TINY = float(np.finfo(np.float32).tiny)
"""Smallest scale computed in float32 (a smaller one would be subnormal and imprecise)."""


def blocks(count: int) -> Iterator[slice]:
    """Yield consecutive slices of at most `BLOCK` positions covering ``range(count)``."""
    return (slice(start, min(start + BLOCK, count)) for start in range(0, count, BLOCK))


def quantize_blocks(
    values: np.ndarray,
    lo: float,
    hi: float,
    levels: int,
    generator: torch.Generator | None = None,
    forward_: Callable[[np.ndarray, np.ndarray], object] | None = None,
    exact: bool = False,
) -> np.ndarray:
    """Return the codes of 1-D float32 ``values`` on the grid ``lo + code * (hi - lo) / levels``.

    Each value ``v`` (after ``forward_``, if given) becomes ``t = (v - lo) * s`` with
    ``s = levels / (hi - lo)``, then ``round(t)`` (half to even) or, with a ``generator``,
    ``floor(t + u)`` with ``u ~ U[0, 1)`` drawn block by block (unbiased), clamped to
    ``[0, levels]``; all codes are 0 where ``hi == lo``.

    The arithmetic is float32 when ``hi - lo`` and ``s`` are safely finite normal float32
    numbers (else float64). Each float32 operation rounds with relative error at most
    ``2**-24``, so ``t`` is within ``2**(bits - 22)`` of its exact value
    (``bits = log2(levels + 1)``): a code is at most ``1/2 + 2**(bits - 22)`` steps from
    the value it codes (``1 + 2**(bits - 22)`` stochastic). The blocks run in numpy, on one
    thread: torch's two-thread passes over a block stall when the cores are busy.

    Parameters
    ----------
    values : np.ndarray
        1-D float32 input, finite.
    lo, hi : float
        Grid ends (float32 values, ``lo <= hi``), bounding ``forward_(values)``.
    levels : int
        Largest code, ``2**bits - 1``.
    generator : torch.Generator, optional
        Source of the stochastic-rounding noise; None rounds to nearest.
    forward_ : callable, optional
        ``forward_(block, source)`` writes into ``block`` the values to quantize, a
        transform of the block ``source`` of ``values`` (e.g. a power function).
    exact : bool, default False
        Compute ``(v - lo) / step`` in float64, ``step = (hi - lo) / levels`` (the float64
        codes slfac has always sent).

    Returns
    -------
    np.ndarray
        ``uint8`` codes for ``levels < 256``, else ``int32``.
    """
    span = hi - lo
    scale = levels / span if span > 0 else 0.0
    narrow = span < FLOAT32_SAFE and (scale == 0 or FLOAT32_TINY <= scale < FLOAT32_SAFE)
    dtype = np.dtype(np.float32 if narrow and not exact else np.float64)
    lo, scale, step = dtype.type(lo), dtype.type(scale), span / levels if span > 0 else 1.0
    codes = np.empty(values.size, np.uint8 if levels < 256 else np.int32)
    buffer = np.empty(min(BLOCK, values.size), dtype)
    noise = torch.from_numpy(np.empty_like(buffer)) if generator is not None else None
    for part in blocks(values.size):
        block = buffer[: part.stop - part.start]
        if forward_ is None:
            np.subtract(values[part], lo, out=block)
        else:
            forward_(block, values[part])
            np.subtract(block, lo, out=block)
        if exact:
            np.divide(block, step, out=block)
        else:
            np.multiply(block, scale, out=block)
        if noise is None:
            np.rint(block, out=block)
        else:
            draws = noise[: block.size]
            torch.rand(block.size, generator=generator, dtype=draws.dtype, out=draws)
            np.add(block, draws.numpy(), out=block)
            np.floor(block, out=block)
        codes[part] = np.clip(block, 0, levels, out=block)  # one pass (maximum+minimum: 3.5x)
    return codes


def scan_blocks(values: np.ndarray, dtype: type | None = None) -> tuple[np.ndarray, float, float]:
    """Return 1-D ``values`` (cast to ``dtype`` if given) and the extremes of their float32 side.

    Torch casts each block (numpy's float16 casts are several times slower) and numpy
    reduces it while it is in cache: one memory pass. The extremes are NaN if a value is
    NaN, so both are finite exactly when every value is; ``0, 0`` for no values. Without
    ``dtype``, ``values`` itself is returned.
    """
    out = values if dtype is None else np.empty(values.size, dtype)
    lows, highs = np.zeros((2, -(-values.size // BLOCK)), np.float32)
    for index, part in enumerate(blocks(values.size)):
        if dtype == values.dtype:
            out[part] = values[part]
        elif dtype is not None:
            torch.from_numpy(out[part]).copy_(torch.from_numpy(values[part]))
        checked = values[part] if values.dtype == np.float32 else out[part]
        lows[index], highs[index] = checked.min(), checked.max()
    if not values.size:
        return out, 0.0, 0.0
    return out, float(lows.min()), float(highs.max())


def finite_flat(tensor: torch.Tensor, dtype: type | None = None) -> tuple[np.ndarray, float, float]:
    """`scan_blocks` of a float tensor's float32 values; raise `CodecError` on NaN or inf.

    Without ``dtype`` the returned array may share memory with ``tensor``: read it only.
    """
    out, lo, hi = scan_blocks(float32_flat(tensor), dtype)
    require_finite_ends(tensor, lo, hi)
    return out, lo, hi


def float32_flat(tensor: torch.Tensor) -> np.ndarray:
    """Return a float tensor's values as a flat float32 array, sharing memory where it can."""
    check_float_tensor(tensor)
    return tensor.detach().to(torch.float32).cpu().reshape(-1).numpy()


def require_finite_ends(tensor: torch.Tensor, lo: float, hi: float) -> None:
    """Raise `CodecError` unless ``tensor``'s float32 extremes ``lo`` and ``hi`` are finite."""
    if not math.isfinite(lo + hi):
        check_finite(tensor)  # names NaN or inf in the input first
        raise CodecError("tensor values overflow float32; refusing to encode")


def decoding_table(
    lo: float,
    hi: float,
    levels: int,
    inverse: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> np.ndarray:
    """Return the float32 value of every code ``0..levels``: ``inverse(dequantize(code))``.

    ``dequantize`` and ``inverse`` (if given) run in float64 and the result is rounded once,
    so looking codes up in the table gives what dequantizing each code in float64 would.
    """
    values = dequantize(torch.arange(levels + 1, dtype=torch.float64), lo, hi, levels)
    return (values if inverse is None else inverse(values)).to(torch.float32).numpy()


def lookup_packed(packed: np.ndarray, bits: int, count: int, table: np.ndarray) -> np.ndarray:
    """Return ``table[code]`` for each of the ``count`` codes of a `pack_bits` stream.

    ``table`` holds ``2**bits`` entries. Widths that divide 8 look whole bytes up in a
    per-byte table (all codes of a byte at once) after checking the stream as
    `unpack_codes` would; other widths unpack the codes first.

    Raises
    ------
    CodecError
        As `unpack_codes`, for a stream of the wrong size or with set padding bits.
    """
    if bits > 8 or 8 % bits:
        return lookup(table, unpack_codes(packed, bits, count))
    packed = check_packed(packed, bits, count)
    tail = count % (8 // bits)
    if tail and packed[-1] >> (bits * tail):
        raise CodecError("padding bits after the last code are not zero")
    return lookup(table[byte_codes(bits)], packed).reshape(-1)[:count]
