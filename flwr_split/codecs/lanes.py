"""Pack codes of at most 8 bits by merging the byte lanes of 64-bit words.

The stream is `flwr_split.codecs.bitpack.pack_bits`'s (LSB first, zero padding bits):
eight codes of ``w`` bits fill ``w`` bytes. Read as a little-endian 64-bit word, eight
``uint8`` codes sit in byte lanes; three merge steps (pairs of codes into 16-bit lanes,
pairs of those into 32-bit lanes, then into the word) shift each code down to bit
``w * j``, and the word's low ``w`` bytes are the packed block. Unpacking reads each
block as an unaligned word and splits the lanes in the reverse order. Every step is a
few whole-array integer operations on blocks of words that stay in cache.
"""

from __future__ import annotations

import numpy as np

WORDS = 2**14
"""Words (of eight codes) per block: two 128 KiB buffers stay in L2."""

_EVEN = tuple(np.uint64(mask) for mask in (0x00FF00FF00FF00FF, 0x0000FFFF0000FFFF, 0xFFFFFFFF))
"""Low half of every 16-, 32- and 64-bit lane."""


def _steps(bits: int) -> list[tuple[int, np.uint64, np.uint64]]:
    """``(step, even mask, shift)`` of each merge step that moves something, narrowest first.

    Step ``k`` moves the odd ``8 << k``-bit lanes down by ``(8 - bits) << k`` bits.
    """
    return [
        (step, even, np.uint64((8 - bits) << step)) for step, even in enumerate(_EVEN) if bits < 8
    ]


def pack_lanes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Return `pack_bits` of 1-D ``uint8`` ``codes`` below ``2**bits`` (``bits`` in 1..8).

    The codes are not checked: a larger one corrupts its neighbours.
    """
    count = codes.size
    blocks = -(-count // 8)
    if count % 8:
        padded = np.zeros(8 * blocks, np.uint8)
        padded[:count] = codes
        codes = padded
    words = np.ascontiguousarray(codes).view("<u8")
    out = np.empty((blocks, bits), np.uint8)
    steps = _steps(bits)
    merged = np.empty(min(WORDS, blocks), np.uint64)
    odd = np.empty_like(merged)
    for start in range(0, blocks, WORDS):
        part = words[start : start + WORDS]
        lanes, moved = merged[: part.size], odd[: part.size]
        np.copyto(lanes, part)
        for _, even, shift in steps:
            np.bitwise_and(lanes, ~even, out=moved)
            np.bitwise_and(lanes, even, out=lanes)
            np.right_shift(moved, shift, out=moved)
            np.bitwise_or(lanes, moved, out=lanes)
        out[start : start + part.size] = lanes.view(np.uint8).reshape(-1, 8)[:, :bits]
    return out.reshape(-1)[: (count * bits + 7) // 8]


def unpack_lanes(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Invert `pack_lanes`: ``count`` ``uint8`` codes and the padding codes after them.

    ``packed`` must hold exactly ``ceil(count * bits / 8)`` bytes. The result has
    ``8 * ceil(count / 8)`` codes; those past ``count`` are zero exactly when the
    stream's padding bits are.
    """
    blocks = -(-count // 8)
    stream = np.zeros(blocks * bits + 8, np.uint8)  # every block readable as a whole word
    stream[: packed.size] = packed
    words = np.ndarray((blocks,), "<u8", stream, 0, (bits,))
    codes = np.empty(8 * blocks, np.uint8)
    low = np.uint64((1 << 8 * bits) - 1) if bits < 8 else ~np.uint64(0)
    steps = [(~even, shift, _low_lanes(bits, step)) for step, even, shift in _steps(bits)[::-1]]
    lanes = np.empty(min(WORDS, blocks), np.uint64)
    moved = np.empty_like(lanes)
    for start in range(0, blocks, WORDS):
        part = words[start : start + WORDS]
        split, up = lanes[: part.size], moved[: part.size]
        np.bitwise_and(part, low, out=split)
        for odd_mask, shift, low_mask in steps:
            np.left_shift(split, shift, out=up)
            np.bitwise_and(up, odd_mask, out=up)
            np.bitwise_and(split, low_mask, out=split)
            np.bitwise_or(split, up, out=split)
        codes[8 * start : 8 * (start + part.size)] = split.view(np.uint8)
    return codes


def _low_lanes(bits: int, step: int) -> np.uint64:
    """Mask of the low ``bits << step`` bits of every ``16 << step``-bit lane."""
    lane = 16 << step
    low = (1 << (bits << step)) - 1
    return np.uint64(sum(low << (lane * i) for i in range(64 // lane)))
