"""Pack small non-negative integer codes into a dense little-endian byte stream."""

from __future__ import annotations

import functools

import numpy as np

from flwr_split.codecs.base import CodecError
from flwr_split.codecs.threads import run_all, spans
from flwr_split.codecs.wordpack import MAX_BITS, check_codes, pack_wide, unpack_wide

WORD_BLOCK = 2**15
"""Codes packed or read per part in 64-bit words (a multiple of 8: parts end on a byte)."""


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
        raise CodecError(f"bits must be an int in 1..{MAX_BITS}, got {bits!r}")


def packed_nbytes(bits: int, count: int) -> int:
    """Return the bytes `pack_bits` produces for ``count`` codes of ``bits`` bits.

    Parameters
    ----------
    bits : int
        Bits per code.
    count : int
        Number of codes.

    Returns
    -------
    int
        ``ceil(bits * count / 8)``.
    """
    return (bits * count + 7) // 8


def index_bits(n: int) -> int:
    """Return the bits needed to address ``n`` positions: ``ceil(log2(n))``, at least 1.

    Parameters
    ----------
    n : int
        Number of positions (``>= 0``).

    Returns
    -------
    int
        The smallest ``b >= 1`` with ``2**b >= n``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise CodecError(f"n must be a non-negative int, got {n!r}")
    return max(1, (n - 1).bit_length())


def pack_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack integer codes into ``ceil(bits * n / 8)`` bytes.

    Bit order is little-endian throughout: bit ``j`` (``j = 0`` is the least
    significant) of code ``i`` is stream bit ``p = i * bits + j``, stored in
    byte ``p // 8`` at bit ``p % 8`` (least significant first). Unused bits of
    the last byte are zero.

    Parameters
    ----------
    codes : np.ndarray
        Integer array of values in ``[0, 2**bits)``; flattened in C order.
    bits : int
        Bits per code, 1..32.

    Returns
    -------
    np.ndarray
        The packed ``uint8`` stream.

    Raises
    ------
    CodecError
        If ``bits`` is out of range or a code does not fit in ``bits`` bits.
    """
    _check_bits(bits)
    codes = check_codes(codes)
    if bits > 8:
        return pack_wide(codes, bits)
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >> bits):
        raise CodecError(f"codes must lie in [0, {2**bits}) to fit in {bits} bits")
    if bits == 1:
        return np.packbits(codes, bitorder="little")
    if bits == 8:
        return codes.astype(np.uint8)
    if 8 % bits == 0:  # whole codes per byte: merge the bytes of one word
        per_byte = 8 // bits
        padded = codes
        if codes.size % per_byte or codes.dtype != np.uint8 or not codes.flags.c_contiguous:
            padded = np.zeros(-(-codes.size // per_byte) * per_byte, dtype=np.uint8)
            padded[: codes.size] = codes
        out = np.empty(padded.size // per_byte, np.uint8)
        _merge_bytes(padded, bits, out)
        return out
    # 3, 5, 6 or 7 bits: eight codes fill ``bits`` bytes; build them in one 64-bit word
    if codes.size > WORD_BLOCK:  # whole bytes per part: its words stay in cache
        parts = range(0, codes.size, WORD_BLOCK)
        return np.concatenate([pack_bits(codes[i : i + WORD_BLOCK], bits) for i in parts])
    groups = np.zeros((-(-codes.size // 8), 8), dtype=np.uint64)
    groups.reshape(-1)[: codes.size] = codes
    words = groups[:, 0].copy()
    for j in range(1, 8):
        words |= groups[:, j] << np.uint64(j * bits)
    as_bytes = words.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :bits]
    return as_bytes.reshape(-1)[: packed_nbytes(bits, codes.size)].copy()


def pack_into(codes: np.ndarray, bits: int, out: np.ndarray) -> None:
    """Write `pack_bits` of 1-D ``codes`` into ``out``, its exact size; the codes are not checked.

    2- and 4-bit contiguous ``uint8`` codes filling whole bytes are merged into ``out`` in
    place: ``codes`` serves as the merge's scratch space and is overwritten (a code above
    ``2**bits - 1`` corrupts its neighbours). Other input goes through `pack_bits`.
    """
    if (
        bits in (2, 4)
        and codes.dtype == np.uint8
        and codes.size % (8 // bits) == 0
        and codes.flags.c_contiguous
    ):
        _merge_bytes(codes, bits, out, overwrite=True)
    else:
        out[...] = pack_bits(codes, bits)


def _merge_bytes(codes: np.ndarray, bits: int, out: np.ndarray, overwrite: bool = False) -> None:
    """Pack contiguous ``uint8`` codes of 2 or 4 bits, ``8 // bits`` per byte, into ``out``.

    With ``overwrite`` the words are merged in ``codes`` itself (no temporary array).
    """
    per_byte = 8 // bits
    # Word i holds code j of byte i at bit 8 j. Multiplying by the sum of
    # 2**(m (8 - bits)), m < per_byte, puts a copy of code j at every bit
    # 8 j + m (8 - bits): all distinct multiples of bits, so the copies
    # never overlap or carry, and m = per_byte - 1 - j lands code j at bit
    # j * bits of the byte that starts at (per_byte - 1) (8 - bits).
    words = codes.view(np.dtype(f"<u{per_byte}"))
    spread = words.dtype.type(sum(1 << (m * (8 - bits)) for m in range(per_byte)))
    merged = np.multiply(words, spread, out=words if overwrite else None)
    np.right_shift(merged, (per_byte - 1) * (8 - bits), out=merged)
    out[...] = merged


def unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Invert `pack_bits`: `unpack_codes` (same parameters and errors), as ``int64``.

    Returns
    -------
    np.ndarray
        ``int64`` array of ``count`` codes, each in ``[0, 2**bits)``.
    """
    return unpack_codes(packed, bits, count).astype(np.int64)


def unpack_codes(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Read codes like `unpack_bits`, into the narrowest unsigned dtype that holds them.

    Parameters
    ----------
    packed : np.ndarray
        One-dimensional ``uint8`` stream of exactly ``ceil(bits * count / 8)``
        bytes whose unused trailing bits are zero.
    bits : int
        Bits per code, 1..32.
    count : int
        Number of codes to read.

    Returns
    -------
    np.ndarray
        ``count`` codes as ``uint8`` (``bits <= 8``), ``uint16`` (``<= 16``) or
        ``uint32``.

    Raises
    ------
    CodecError
        If ``packed`` is not a 1-D ``uint8`` array of the exact length, or its
        padding bits are set.
    """
    packed = check_packed(packed, bits, count)
    if bits > 8:
        return unpack_wide(packed, bits, count).astype(_word_dtype(bits))
    codes = _split_bytes(packed, bits) if 8 % bits == 0 else _split_words(packed, bits, count)
    if codes[count:].any():
        raise CodecError("padding bits after the last code are not zero")
    return codes[:count]


def check_packed(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Return ``packed`` as an array after the checks of `unpack_codes` (padding bits aside)."""
    _check_bits(bits)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise CodecError(f"count must be a non-negative int, got {count!r}")
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim != 1:
        raise CodecError(
            f"packed bits must be a 1-D uint8 array, got {packed.dtype} {packed.shape}"
        )
    expected = packed_nbytes(bits, count)
    if packed.size != expected:
        raise CodecError(
            f"packed bits hold {packed.size} bytes, expected {expected} "
            f"for {count} codes of {bits} bits"
        )
    return packed


def _split_words(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Return every code of ``count`` codes of 3, 5, 6 or 7 bits, padding codes included.

    Each ``bits`` bytes hold eight codes; they are read from one 64-bit word.
    """
    part_bytes = WORD_BLOCK * bits // 8
    if packed.size > part_bytes:  # whole words per part: they stay in cache
        parts = range(0, packed.size, part_bytes)
        return np.concatenate(
            [_split_words(packed[i : i + part_bytes], bits, WORD_BLOCK) for i in parts]
        )
    stream = np.zeros(-(-count // 8) * bits, dtype=np.uint8)
    stream[: packed.size] = packed
    as_bytes = np.zeros((stream.size // bits, 8), dtype=np.uint8)
    as_bytes[:, :bits] = stream.reshape(-1, bits)
    words = as_bytes.view("<u8")
    shifts = np.arange(8, dtype=np.uint64) * np.uint64(bits)
    return ((words >> shifts) & np.uint64(2**bits - 1)).astype(np.uint8).reshape(-1)


def _split_bytes(packed: np.ndarray, bits: int) -> np.ndarray:
    """Return every code of a ``uint8`` stream of ``bits``-bit codes (``8 % bits == 0``)."""
    if bits == 1:
        return np.unpackbits(packed, bitorder="little")
    if bits == 8:
        return packed.copy()
    return lookup(byte_codes(bits), packed).reshape(-1)


def lookup(table: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Return ``table[indices]`` (rows of ``table``), `WORD_BLOCK` indices at a time.

    ``np.take`` converts its indices to ``intp``; blocks keep that copy in cache (a
    whole-array take of a 4 MB ``uint8`` stream took 2.3x the CPU time). Large inputs
    are looked up in one span per thread (`threads.run_all`).
    """
    out = np.empty((indices.size, *table.shape[1:]), table.dtype)
    run_all(
        [(_lookup_span, table, indices, out, *span) for span in spans(indices.size, WORD_BLOCK)]
    )
    return out


def _lookup_span(
    table: np.ndarray, indices: np.ndarray, out: np.ndarray, start: int, stop: int
) -> None:
    """Write ``table[indices[start:stop]]`` into ``out[start:stop]``, block by block."""
    for first in range(start, stop, WORD_BLOCK):
        part = slice(first, min(first + WORD_BLOCK, stop))
        np.take(table, indices[part], axis=0, out=out[part], mode="wrap")


@functools.cache
def byte_codes(bits: int) -> np.ndarray:
    """Return the codes each byte value holds, for ``bits`` in 1, 2, 4, 8.

    Parameters
    ----------
    bits : int
        Bits per code; a divisor of 8.

    Returns
    -------
    np.ndarray
        Read-only ``uint8`` table of shape ``(256, 8 // bits)``: row ``b`` holds
        the codes of byte ``b`` in stream order (lowest bits first), so
        ``byte_codes(bits)[packed].reshape(-1)`` unpacks a stream.
    """
    shifts = np.arange(8 // bits, dtype=np.uint8) * bits
    table = (np.arange(256, dtype=np.uint8)[:, None] >> shifts) & np.uint8(2**bits - 1)
    table.flags.writeable = False
    return table


def _word_dtype(bits: int) -> np.dtype:
    """Smallest little-endian unsigned dtype that holds ``bits`` bits."""
    return np.dtype("<u1" if bits <= 8 else "<u2" if bits <= 16 else "<u4")
