"""Blocks of eight codes packed at their width in 64-bit words (wide codes, segments)."""

from __future__ import annotations

import numpy as np

from flwr_split.codecs.base import CodecError

MAX_BITS = 32
"""Widest code `pack_bits` and `pack_segments` accept (codes travel through ``uint32``)."""

BLOCK = 8
"""Codes per block: `BLOCK` codes of ``w`` bits fill exactly ``w`` bytes."""


def check_codes(codes: np.ndarray) -> np.ndarray:
    """Return ``codes`` flattened, or raise `CodecError` unless they are integers."""
    codes = np.asarray(codes).reshape(-1)
    if codes.dtype == np.bool_ or not np.issubdtype(codes.dtype, np.integer):
        raise CodecError(f"codes must be integers, got dtype {codes.dtype}")
    return codes


def _block_layout(widths: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut every segment into blocks of `BLOCK` codes (its last one may be partial).

    Returns the width of each block and how many of its codes are real.
    """
    blocks = -(-counts // BLOCK)
    block_widths = np.repeat(widths, blocks)
    real = np.full(block_widths.size, BLOCK)
    partial = counts % BLOCK > 0
    real[np.cumsum(blocks)[partial] - 1] = counts[partial] % BLOCK
    return block_widths, real


def _bit_offsets(block_widths: np.ndarray) -> tuple[np.ndarray, int]:
    """Bit offset ``k * w`` of code ``k`` of every block (``(BLOCK, blocks)``), and words per block.

    A block of width ``w`` fills the low ``w`` bytes of its little-endian 64-bit
    words. Arrays are code-major so numpy loops run along the blocks.
    """
    offsets = np.arange(BLOCK, dtype=np.uint64)[:, None] * block_widths.view(np.uint64)
    return offsets, -(-int(block_widths.max()) // 8)


def _pack_words(blocks: np.ndarray, block_widths: np.ndarray) -> np.ndarray:
    """Pack each block of unsigned codes LSB-first into its ``(blocks, 8 * words)`` bytes."""
    offsets, words = _bit_offsets(block_widths)
    codes = blocks.T.astype(np.uint64)
    if words == 1:
        return (codes << offsets).sum(0)[:, None].astype("<u8", copy=False).view(np.uint8)
    word, shift = offsets >> np.uint64(6), offsets & np.uint64(63)
    low = codes << shift
    high = (codes >> np.uint64(1)) >> (np.uint64(63) - shift)  # bits spilling into the next word
    packed = [
        np.where(word == j, low, 0).sum(0) + np.where(word == j - 1, high, 0).sum(0)
        for j in range(words)
    ]
    return np.stack(packed, 1).astype("<u8", copy=False).view(np.uint8)


def _unpack_words(stream: np.ndarray, block_widths: np.ndarray) -> np.ndarray:
    """Invert `_pack_words`: read `BLOCK` codes from each row of ``8 * words`` bytes."""
    offsets, words = _bit_offsets(block_widths)
    packed = stream.view("<u8").astype(np.uint64, copy=False).T
    mask = (np.uint64(1) << block_widths.view(np.uint64)) - np.uint64(1)
    if words == 1:
        return ((packed >> offsets) & mask).T
    word, shift = (offsets >> np.uint64(6)).view(np.int64), offsets & np.uint64(63)
    codes = np.take_along_axis(packed, word, 0) >> shift
    following = np.take_along_axis(packed, np.minimum(word + 1, words - 1), 0)
    spilled = (following << np.uint64(1)) << (np.uint64(63) - shift)
    codes |= np.where(word + 1 < words, spilled, 0)
    return (codes & mask).T


def check_fit(codes: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Raise `CodecError` unless every code fits its segment's width; return them unsigned."""
    if not codes.size:
        return codes
    if codes.dtype.kind == "i":
        if int(codes.min()) < 0:
            raise CodecError("negative codes do not fit in any width")
        codes = codes.view(f"u{codes.dtype.itemsize}")  # numpy's int64 -> uint64 cast is slow
    filled = counts > 0
    largest = np.maximum.reduceat(codes, (np.cumsum(counts) - counts)[filled])
    misfits = np.flatnonzero(largest.astype(np.uint64) >> widths[filled].view(np.uint64))
    if misfits.size:
        bits = int(widths[filled][misfits[0]])
        raise CodecError(f"codes must lie in [0, {2**bits}) to fit in {bits} bits")
    return codes


def _byte_index(nbytes: np.ndarray, row_bytes: int) -> np.ndarray:
    """Flat index, in rows of ``row_bytes`` bytes, of the first ``nbytes[r]`` bytes of each row."""
    start = np.cumsum(nbytes) - nbytes
    return np.repeat(np.arange(nbytes.size) * row_bytes - start, nbytes) + np.arange(
        start[-1] + nbytes[-1]
    )


def _real_codes(real: np.ndarray) -> np.ndarray | None:
    """``(blocks, BLOCK)`` mask of the real codes, or None when every block is full."""
    return None if (real == BLOCK).all() else np.arange(BLOCK) < real[:, None]


def pack_blocks(codes: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pack segments of codes at their widths (the work of `pack_segments`).

    All blocks are packed at once, each at its width; a partial block is padded
    with zero codes and cut to its ``ceil(real * w / 8)`` bytes.
    """
    codes = check_fit(codes, widths, counts)
    block_widths, real = _block_layout(widths, counts)
    if not block_widths.size:
        return np.zeros(0, np.uint8)
    valid = _real_codes(real)
    if valid is None:
        blocks = codes.reshape(-1, BLOCK)
    else:
        blocks = np.zeros(valid.shape, codes.dtype)
        blocks[valid] = codes
    packed = _pack_words(blocks, block_widths)
    nbytes = (block_widths * real + 7) // 8
    return np.take(packed.reshape(-1), _byte_index(nbytes, packed.shape[1]))


def unpack_blocks(packed: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Invert `pack_blocks` (``packed`` has the right size); check the padding bits."""
    block_widths, real = _block_layout(widths, counts)
    if not block_widths.size:
        return np.zeros(0, np.int64)
    nbytes = (block_widths * real + 7) // 8
    stream = np.zeros((block_widths.size, 8 * -(-int(block_widths.max()) // 8)), np.uint8)
    stream.reshape(-1)[_byte_index(nbytes, stream.shape[1])] = packed
    blocks = _unpack_words(stream, block_widths)
    valid = _real_codes(real)
    if valid is None:
        return blocks.reshape(-1).view(np.int64)
    if blocks[~valid].any():
        raise CodecError("padding bits after the last code are not zero")
    return blocks[valid].view(np.int64)


def pack_wide(codes: np.ndarray, bits: int) -> np.ndarray:
    """`pack_bits` of codes wider than 8 bits: one segment of width ``bits``.

    Whole-byte widths (16, 24, 32) copy each code's low bytes (the same stream, tested).
    """
    if bits % 8:
        return pack_blocks(codes, np.array([bits]), np.array([codes.size]))
    codes = check_fit(codes, np.array([bits]), np.array([codes.size]))
    as_bytes = codes.astype("<u4", copy=False).view(np.uint8).reshape(-1, 4)
    return as_bytes[:, : bits // 8].reshape(-1)


def unpack_wide(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Invert `pack_wide` (``packed`` has the right size) into int64 codes."""
    if bits % 8:
        return unpack_blocks(packed, np.array([bits]), np.array([count]))
    words = np.zeros((count, 4), np.uint8)
    words[:, : bits // 8] = packed.reshape(count, bits // 8)
    return words.view("<u4").reshape(-1).astype(np.int64)
