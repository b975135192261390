"""Pack small non-negative integer codes into a dense little-endian byte stream."""

from __future__ import annotations

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
    return _pack_blocks(codes, np.array([bits]), np.array([codes.size]))


def unpack_bits(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Invert `pack_bits`: read ``count`` codes of ``bits`` bits from ``packed``.

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
        ``int64`` array of ``count`` codes, each in ``[0, 2**bits)``.

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
    return _unpack_blocks(packed, np.array([bits]), np.array([count]))


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


def _pack_rows(rows: np.ndarray, bits: int) -> np.ndarray:
    """Pack each row of `BLOCK` codes into ``bits`` bytes, LSB-first, via 64-bit words."""
    words = np.zeros((rows.shape[0], -(-bits // 8)), dtype="<u8")
    for k in range(BLOCK):
        word, shift = divmod(k * bits, 64)
        code = rows[:, k].astype(np.uint64)
        words[:, word] |= code << np.uint64(shift)
        if shift + bits > 64:
            words[:, word + 1] |= code >> np.uint64(64 - shift)
    return words.view(np.uint8)[:, :bits]


def _unpack_rows(rows: np.ndarray, bits: int) -> np.ndarray:
    """Invert `_pack_rows`: read `BLOCK` codes of ``bits`` bits from each row of bytes."""
    buffer = np.zeros((rows.shape[0], 8 * -(-bits // 8)), dtype=np.uint8)
    buffer[:, :bits] = rows
    words = buffer.view("<u8")
    codes = np.empty((rows.shape[0], BLOCK), dtype=np.uint64)
    for k in range(BLOCK):
        word, shift = divmod(k * bits, 64)
        codes[:, k] = words[:, word] >> np.uint64(shift)
        if shift + bits > 64:
            codes[:, k] |= words[:, word + 1] << np.uint64(64 - shift)
    return codes & np.uint64(2**bits - 1)


def _width_groups(block_widths: np.ndarray) -> list[tuple[int, np.ndarray | slice]]:
    """``(width, rows)`` of every distinct block width (all rows when there is one)."""
    distinct = np.unique(block_widths)
    if distinct.size == 1:
        return [(int(distinct[0]), slice(None))]
    return [(int(w), np.flatnonzero(block_widths == w)) for w in distinct]


def _pack_blocks(codes: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pack segments of codes at their widths (the work of `pack_segments`).

    The blocks of one width are packed in one go; a partial block is padded
    with zero codes and cut to its ``ceil(real * w / 8)`` bytes.
    """
    block_widths, real = _block_layout(widths, counts)
    if not block_widths.size:
        return np.zeros(0, np.uint8)
    valid = np.arange(BLOCK) < real[:, None]
    if valid.all():
        blocks = codes.reshape(-1, BLOCK)
    else:
        blocks = np.zeros(valid.shape, codes.dtype)
        blocks[valid] = codes
    nbytes = (block_widths * real + 7) // 8
    out = np.zeros((block_widths.size, int(block_widths.max())), np.uint8)
    for bits, rows in _width_groups(block_widths):
        group = blocks[rows]
        if int(group.min()) < 0 or int(group.max()) >> bits:
            raise CodecError(f"codes must lie in [0, {2**bits}) to fit in {bits} bits")
        out[rows, :bits] = _pack_rows(group, bits)
    return out[np.arange(out.shape[1]) < nbytes[:, None]]


def _unpack_blocks(packed: np.ndarray, widths: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Invert `_pack_blocks` (``packed`` has the right size); check the padding bits."""
    block_widths, real = _block_layout(widths, counts)
    if not block_widths.size:
        return np.zeros(0, np.int64)
    nbytes = (block_widths * real + 7) // 8
    stream = np.zeros((block_widths.size, int(block_widths.max())), np.uint8)
    stream[np.arange(stream.shape[1]) < nbytes[:, None]] = packed
    blocks = np.empty((block_widths.size, BLOCK), np.uint64)
    for bits, rows in _width_groups(block_widths):
        blocks[rows] = _unpack_rows(stream[rows, :bits], bits)
    valid = np.arange(BLOCK) < real[:, None]
    if valid.all():
        return blocks.reshape(-1).astype(np.int64)
    if blocks[~valid].any():
        raise CodecError("padding bits after the last code are not zero")
    return blocks[valid].astype(np.int64)


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
