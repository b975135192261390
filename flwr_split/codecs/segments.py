"""Pack segments of integer codes, each segment at its own width, into one byte stream."""

from __future__ import annotations

import numpy as np

from flwr_split.codecs.base import CodecError
from flwr_split.codecs.bitpack import pack_bits, unpack_codes
from flwr_split.codecs.lanes import pack_lanes, unpack_lanes
from flwr_split.codecs.wordpack import MAX_BITS, check_codes, check_fit, pack_blocks, unpack_blocks

LONG_SEGMENT = 4096
"""Mean codes per segment from which each segment is packed on its own with `pack_bits`."""


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
    codes = check_codes(codes)
    if codes.size != int(counts.sum()):
        raise CodecError(f"expected {int(counts.sum())} codes, got {codes.size}")
    if codes.size < LONG_SEGMENT * widths.size:  # many short segments: all blocks at once
        return pack_blocks(codes, widths, counts)
    ends = np.cumsum(counts).tolist()
    pack = pack_bits
    if codes.dtype == np.uint8:  # the lanes do not check that codes fit: check all at once
        check_fit(codes, widths, counts)
        pack = _pack_long
    pieces = [pack(codes[end - n : end], w) for w, n, end in _segments(widths, counts, ends)]
    return np.concatenate([np.zeros(0, np.uint8), *pieces])


def _pack_long(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack one long segment of ``uint8`` codes that fit: `pack_bits`' byte paths, else lanes."""
    return pack_bits(codes, bits) if 8 % bits == 0 else pack_lanes(codes, bits)


def _segments(widths: np.ndarray, counts: np.ndarray, ends: list[int]) -> zip:
    """``(width, count, end)`` of every segment as Python ints."""
    return zip(widths.tolist(), counts.tolist(), ends, strict=True)


def unpack_segments(
    packed: np.ndarray, widths: np.ndarray, counts: np.ndarray, dtype: type = np.int64
) -> np.ndarray:
    """Invert `pack_segments`: read every segment's codes back, in order.

    Parameters
    ----------
    packed : np.ndarray
        One-dimensional ``uint8`` stream of exactly
        ``segments_nbytes(widths, counts).sum()`` bytes with zero padding bits.
    widths, counts : np.ndarray
        Bits per code and number of codes of each segment.
    dtype : numpy integer type, default ``np.int64``
        Type of the result; it must hold ``2**max(widths) - 1``.

    Returns
    -------
    np.ndarray
        The ``sum(counts)`` codes.

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
    if int(counts.sum()) < LONG_SEGMENT * widths.size:
        return unpack_blocks(packed, widths, counts).astype(dtype, copy=False)
    ends = np.cumsum(sizes).tolist()
    pieces = [
        _unpack_long(packed[end - size : end], w, n)
        for (w, n, end), size in zip(_segments(widths, counts, ends), sizes.tolist(), strict=True)
    ]
    return np.concatenate([np.zeros(0, dtype), *pieces], dtype=dtype, casting="unsafe")


def _unpack_long(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Read one long segment (`unpack_codes`; `unpack_lanes` below 8 bits), checking padding."""
    if bits >= 8:
        return unpack_codes(packed, bits, count)
    codes = unpack_lanes(packed, bits, count)
    if codes[count:].any():
        raise CodecError("padding bits after the last code are not zero")
    return codes[:count]
