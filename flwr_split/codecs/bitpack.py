"""Pack small non-negative integer codes into a dense little-endian byte stream."""

from __future__ import annotations

import functools

import numpy as np

from flwr_split.codecs.base import CodecError

MAX_BITS = 32
"""Widest code `pack_bits` accepts (codes travel through a ``uint32`` view)."""


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
    codes = _check_codes(codes)
    if bits > 8:
        return _pack_blocks(codes, np.array([bits]), np.array([codes.size]))
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >> bits):
        raise CodecError(f"codes must lie in [0, {2**bits}) to fit in {bits} bits")
    if bits == 1:
        return np.packbits(codes, bitorder="little")
    if 8 % bits == 0:  # whole codes per byte: merge the bytes of one word
        per_byte = 8 // bits
        padded = np.zeros(-(-codes.size // per_byte) * per_byte, dtype=np.uint8)
        padded[: codes.size] = codes
        # Word i holds code j of byte i at bit 8 j. Multiplying by the sum of
        # 2**(m (8 - bits)), m < per_byte, puts a copy of code j at every bit
        # 8 j + m (8 - bits): all distinct multiples of bits, so the copies
        # never overlap or carry, and m = per_byte - 1 - j lands code j at bit
        # j * bits of the byte that starts at (per_byte - 1) (8 - bits).
        words = padded.view(np.dtype(f"<u{per_byte}"))
        spread = words.dtype.type(sum(1 << (m * (8 - bits)) for m in range(per_byte)))
        return ((words * spread) >> ((per_byte - 1) * (8 - bits))).astype(np.uint8)
    # 3, 5, 6 or 7 bits: eight codes fill ``bits`` bytes; build them in one 64-bit word
    groups = np.zeros((-(-codes.size // 8), 8), dtype=np.uint64)
    groups.reshape(-1)[: codes.size] = codes
    words = groups[:, 0].copy()
    for j in range(1, 8):
        words |= groups[:, j] << np.uint64(j * bits)
    as_bytes = words.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :bits]
    return as_bytes.reshape(-1)[: packed_nbytes(bits, codes.size)].copy()


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
    if bits > 8:
        return _unpack_blocks(packed, np.array([bits]), np.array([count])).astype(_word_dtype(bits))
    codes = _split_bytes(packed, bits) if 8 % bits == 0 else _split_words(packed, bits, count)
    if codes[count:].any():
        raise CodecError("padding bits after the last code are not zero")
    return codes[:count]


def _split_words(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Return every code of ``count`` codes of 3, 5, 6 or 7 bits, padding codes included.

    Each ``bits`` bytes hold eight codes; they are read from one 64-bit word.
    """
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
    return byte_codes(bits).take(packed, axis=0).reshape(-1)


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


BLOCK = 8
"""Codes per block: `BLOCK` codes of ``w`` bits fill exactly ``w`` bytes."""


def _check_codes(codes: np.ndarray) -> np.ndarray:
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


def _check_fit(codes: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
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


def _pack_blocks(codes: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pack segments of codes at their widths (the work of `pack_segments`).

    All blocks are packed at once, each at its width; a partial block is padded
    with zero codes and cut to its ``ceil(real * w / 8)`` bytes.
    """
    codes = _check_fit(codes, widths, counts)
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


def _unpack_blocks(packed: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Invert `_pack_blocks` (``packed`` has the right size); check the padding bits."""
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


def segments_nbytes(widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Return the bytes of each segment `pack_segments` writes: ``ceil(w * n / 8)``.

    Parameters
    ----------
    widths, counts : np.ndarray
        Bits per code and number of codes of each segment (non-negative ints).

    Returns
    -------
    np.ndarray
        int64 byte counts, one per segment.
    """
    return (np.asarray(widths, np.int64) * np.asarray(counts, np.int64) + 7) // 8


def _check_segments(widths: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    widths, counts = np.asarray(widths, np.int64), np.asarray(counts, np.int64)
    if widths.shape != counts.shape or widths.ndim != 1:
        raise CodecError("segment widths and counts must be 1-D arrays of the same length")
    if counts.size and counts.min() < 0:
        raise CodecError("segment counts must be >= 0")
    if widths.size and (widths.min() < 1 or widths.max() > MAX_BITS):
        raise CodecError(f"segment widths must lie in 1..{MAX_BITS}")
    return widths, counts


def pack_segments(codes: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pack consecutive segments of codes, each at its own width and padded to a byte.

    Segment ``s`` holds the next ``counts[s]`` codes of ``codes`` at
    ``widths[s]`` bits each; its bytes are ``pack_bits(segment, widths[s])``,
    and the segments' bytes are concatenated.

    Parameters
    ----------
    codes : np.ndarray
        Integer codes, ``sum(counts)`` of them, each below ``2**width`` of its segment.
    widths, counts : np.ndarray
        Bits per code (1..32) and number of codes of each segment.

    Returns
    -------
    np.ndarray
        The ``uint8`` stream of ``segments_nbytes(widths, counts).sum()`` bytes.

    Raises
    ------
    CodecError
        If the counts do not add up to the codes or a code does not fit its width.
    """
    widths, counts = _check_segments(widths, counts)
    codes = _check_codes(codes)
    if codes.size != int(counts.sum()):
        raise CodecError(f"expected {int(counts.sum())} codes, got {codes.size}")
    return _pack_blocks(codes, widths, counts)


def unpack_segments(packed: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Invert `pack_segments`: read every segment's codes back, in order.

    Parameters
    ----------
    packed : np.ndarray
        One-dimensional ``uint8`` stream of exactly
        ``segments_nbytes(widths, counts).sum()`` bytes with zero padding bits.
    widths, counts : np.ndarray
        Bits per code and number of codes of each segment.

    Returns
    -------
    np.ndarray
        int64 codes, ``sum(counts)`` of them.

    Raises
    ------
    CodecError
        If ``packed`` is not a 1-D ``uint8`` array of the exact length, or a
        padding bit is set.
    """
    widths, counts = _check_segments(widths, counts)
    packed = np.asarray(packed)
    sizes = segments_nbytes(widths, counts)
    if packed.dtype != np.uint8 or packed.ndim != 1 or packed.size != int(sizes.sum()):
        raise CodecError(
            f"packed segments must be a 1-D uint8 array of {int(sizes.sum())} bytes, "
            f"got {packed.dtype} {packed.shape}"
        )
    return _unpack_blocks(packed, widths, counts)
