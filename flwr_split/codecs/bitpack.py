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
    codes = np.asarray(codes).reshape(-1)
    if codes.dtype == np.bool_ or not np.issubdtype(codes.dtype, np.integer):
        raise CodecError(f"codes must be integers, got dtype {codes.dtype}")
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
    if bits < 8:  # eight codes fill ``bits`` bytes: build them in one 64-bit word
        groups = np.zeros((-(-codes.size // 8), 8), dtype=np.uint64)
        groups.reshape(-1)[: codes.size] = codes
        words = groups[:, 0].copy()
        for j in range(1, 8):
            words |= groups[:, j] << np.uint64(j * bits)
        as_bytes = words.astype("<u8").view(np.uint8).reshape(-1, 8)[:, :bits]
        return as_bytes.reshape(-1)[: packed_nbytes(bits, codes.size)].copy()
    word = _word_dtype(bits)
    as_bytes = np.ascontiguousarray(codes, dtype=word).view(np.uint8).reshape(-1, word.itemsize)
    bit_matrix = np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :bits]
    return np.packbits(bit_matrix.reshape(-1), bitorder="little")


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
    if 8 % bits == 0:  # whole codes per byte: look each byte's codes up
        codes = _split_bytes(packed, bits)
        if codes[count:].any():
            raise CodecError("padding bits after the last code are not zero")
        return codes[:count]
    if bits < 8:  # ``bits`` bytes hold eight codes: read them from one 64-bit word
        stream = np.zeros(-(-count // 8) * bits, dtype=np.uint8)
        stream[: packed.size] = packed
        as_bytes = np.zeros((stream.size // bits, 8), dtype=np.uint8)
        as_bytes[:, :bits] = stream.reshape(-1, bits)
        words = as_bytes.view("<u8")
        shifts = np.arange(8, dtype=np.uint64) * np.uint64(bits)
        codes = ((words >> shifts) & np.uint64(2**bits - 1)).astype(np.uint8).reshape(-1)
        if codes[count:].any():
            raise CodecError("padding bits after the last code are not zero")
        return codes[:count]
    stream = np.unpackbits(packed, bitorder="little")
    if stream[bits * count :].any():
        raise CodecError("padding bits after the last code are not zero")
    word = _word_dtype(bits)
    bit_matrix = np.zeros((count, 8 * word.itemsize), dtype=np.uint8)
    bit_matrix[:, :bits] = stream[: bits * count].reshape(count, bits)
    return np.packbits(bit_matrix, axis=1, bitorder="little").view(word).reshape(count)


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
    codes = np.asarray(codes).reshape(-1)
    if codes.size != int(counts.sum()):
        raise CodecError(f"expected {int(counts.sum())} codes, got {codes.size}")
    pieces = np.split(codes, np.cumsum(counts)[:-1]) if counts.size else []
    packed = [pack_bits(piece, int(w)) for piece, w in zip(pieces, widths, strict=True)]
    return np.concatenate([np.zeros(0, np.uint8), *packed])


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
    pieces = np.split(packed, np.cumsum(sizes)[:-1]) if sizes.size else []
    codes = [
        unpack_bits(piece, int(w), int(n))
        for piece, w, n in zip(pieces, widths, counts, strict=True)
    ]
    return np.concatenate([np.zeros(0, np.int64), *codes])
