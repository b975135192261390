"""Where a packed mask of whole-byte codes holds all-ones codes, searched on torch's threads.

A mask of ``width``-bit codes (``8 % width == 0``, as `bitpack.pack_bits` packs them) is
read as 64-bit words, `BYTES` bytes at a time so a block stays in cache: ANDing a word with
itself shifted right by ``1 .. bits - 1`` leaves bit ``j * width`` of a byte set iff the low
``bits`` bits of its code ``j`` all are (a shift moves bits across bytes only into bits above
the byte's last code's low bits, which the AND mask drops). Only the bytes of non-zero words
are then split into codes, by a table of the 256 byte values.
"""

from __future__ import annotations

import functools

import numpy as np

from flwr_split.codecs.bitpack import byte_codes
from flwr_split.codecs.threads import run_all, spans

BYTES = 2**17
"""Mask bytes searched per block (a multiple of 8: blocks are whole words)."""


@functools.cache
def top_table(width: int, bits: int) -> np.ndarray:
    """Return, per byte value ``b``, whether each of its codes has its low ``bits`` bits set.

    Row ``b`` holds ``8 // width`` bools (code ``j`` at byte ``j``), read as one unsigned
    integer, so a 1-D `np.take` looks rows up (a 2-D fancy index took 37 ns a row).
    """
    levels = 2**bits - 1
    table = np.ascontiguousarray(byte_codes(width) & levels == levels)
    table = table.view(f"<u{8 // width}").reshape(256)
    table.flags.writeable = False
    return table


def top_positions(packed: np.ndarray, width: int, bits: int) -> np.ndarray:
    """Return the ascending positions of the codes of ``packed`` whose low ``bits`` bits are set.

    Parameters
    ----------
    packed : np.ndarray
        1-D ``uint8`` stream of ``width``-bit codes, ``width`` in 1, 2, 4, 8. Padding codes
        after the last code are searched too.
    width, bits : int
        Bits per code, and the low bits (``1 <= bits <= width``) that must all be set.
    """
    found = run_all([(_span, packed, width, bits, *span) for span in spans(packed.size, BYTES)])
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _span(packed: np.ndarray, width: int, bits: int, start: int, stop: int) -> np.ndarray:
    """`top_positions` of the codes in bytes ``start .. stop`` (``start`` a multiple of 8)."""
    per_byte = 8 // width
    keep = np.uint64(sum(1 << (j * width) for j in range(per_byte)) * 0x0101010101010101)
    table = top_table(width, bits)
    ones = np.empty(min(BYTES, stop - start) // 8 + 1, np.uint64)
    moved = np.empty_like(ones)
    flags = np.empty(ones.size, bool)
    found = []
    for first in range(start, stop, BYTES):
        block = packed[first : min(first + BYTES, stop)]
        if block.size % 8:  # the stream's last bytes: zero-padded to a whole word
            block = np.concatenate([block, np.zeros(8 - block.size % 8, np.uint8)])
        words = block.view("<u8")
        lanes, shifted = ones[: words.size], moved[: words.size]
        np.bitwise_and(words, keep, out=lanes)
        for shift in range(1, bits):
            np.bitwise_and(lanes, np.right_shift(words, np.uint64(shift), out=shifted), out=lanes)
        # nonzero of bools: numpy's fast path (of integers it tests element by element)
        hit = np.flatnonzero(np.not_equal(lanes, 0, out=flags[: words.size]))
        in_hit = np.flatnonzero(lanes[hit].view(np.uint8) != 0)
        hit_bytes = hit[in_hit >> 3] * 8 + (in_hit & 7)
        in_byte = np.flatnonzero(np.take(table, block[hit_bytes]).view(bool))
        found.append((hit_bytes[in_byte // per_byte] + first) * per_byte + in_byte % per_byte)
    return np.concatenate(found)
