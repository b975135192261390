"""Tests for the bit packing helpers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.codecs import CodecError
from flwr_split.codecs.bitpack import (
    byte_codes,
    index_bits,
    pack_bits,
    packed_nbytes,
    unpack_bits,
    unpack_codes,
)
from flwr_split.codecs.lanes import pack_lanes, unpack_lanes
from flwr_split.codecs.segments import (
    LONG_SEGMENT,
    pack_segments,
    segments_nbytes,
    unpack_segments,
)
from flwr_split.codecs.wordpack import pack_blocks, pack_wide, unpack_blocks, unpack_wide


@st.composite
def codes_and_bits(draw):
    bits = draw(st.integers(1, 32))
    codes = draw(st.lists(st.integers(0, 2**bits - 1), max_size=40))
    return np.array(codes, dtype=np.int64), bits


@settings(max_examples=150, deadline=None)
@given(codes_and_bits())
def test_unpack_inverts_pack_with_exact_byte_count(case):
    codes, bits = case
    packed = pack_bits(codes, bits)
    assert packed.dtype == np.uint8
    assert packed.size == packed_nbytes(bits, codes.size) == -(-bits * codes.size // 8)
    decoded = unpack_bits(packed, bits, codes.size)
    assert decoded.dtype == np.int64
    np.testing.assert_array_equal(decoded, codes)


@settings(max_examples=150, deadline=None)
@given(codes_and_bits(), st.integers(0, 300))
def test_pack_matches_a_bit_by_bit_reference_and_unpack_codes_is_narrow(case, extra):
    codes, bits = case
    codes = np.concatenate([codes, np.full(extra, 2**bits - 1)])  # long runs of all-ones codes
    stream = (codes[:, None] >> np.arange(bits)) & 1
    expected = np.packbits(stream.reshape(-1).astype(np.uint8), bitorder="little")
    packed = pack_bits(codes, bits)
    np.testing.assert_array_equal(packed, expected)
    narrow = unpack_codes(packed, bits, codes.size)
    assert narrow.dtype == (np.uint8 if bits <= 8 else np.uint16 if bits <= 16 else np.uint32)
    np.testing.assert_array_equal(narrow, codes)


@pytest.mark.parametrize("bits", [16, 24, 32])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int64])
def test_whole_byte_wide_codes_pack_like_the_word_packer(bits, dtype):
    high = min(2**bits, np.iinfo(dtype).max + 1)
    codes = np.random.default_rng(bits).integers(0, high, 1001).astype(dtype)
    one = (np.array([bits]), np.array([codes.size]))
    packed = pack_wide(codes, bits)
    np.testing.assert_array_equal(packed, pack_blocks(codes, *one))
    unpacked = unpack_wide(packed, bits, codes.size)
    np.testing.assert_array_equal(unpacked, unpack_blocks(packed, *one))
    np.testing.assert_array_equal(unpacked, codes)


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_byte_codes_lists_the_codes_of_each_byte_lowest_bits_first(bits):
    table = byte_codes(bits)
    assert table.shape == (256, 8 // bits) and table.dtype == np.uint8
    assert not table.flags.writeable
    mask = 2**bits - 1
    expected = [[byte >> (j * bits) & mask for j in range(8 // bits)] for byte in range(256)]
    assert table.tolist() == expected


def test_bit_order_is_little_endian():
    assert pack_bits(np.array([1, 0, 1, 1]), 1).tolist() == [0b1101]
    assert pack_bits(np.array([0x1234]), 16).tolist() == [0x34, 0x12]
    # Code 0 = 0b101 fills stream bits 0..2, code 1 = 0b011 fills bits 3..5.
    assert pack_bits(np.array([0b101, 0b011]), 3).tolist() == [0b011101]
    assert pack_bits(np.array([2**32 - 1]), 32).tolist() == [255, 255, 255, 255]


def test_pack_of_empty_codes_is_empty():
    packed = pack_bits(np.array([], dtype=np.int64), 7)
    assert packed.dtype == np.uint8 and packed.size == 0
    assert unpack_bits(packed, 7, 0).size == 0


@pytest.mark.parametrize("codes", [[-1], [4], [0, 1, 2, 3, 8]])
def test_pack_rejects_codes_that_do_not_fit(codes):
    with pytest.raises(CodecError, match="fit"):
        pack_bits(np.array(codes), 2)


@pytest.mark.parametrize("codes", [np.array([0.5]), np.array([True])])
def test_pack_rejects_non_integer_codes(codes):
    with pytest.raises(CodecError, match="integers"):
        pack_bits(codes, 2)


@pytest.mark.parametrize("bits", [0, 33, -1, True, 2.0])
def test_pack_and_unpack_reject_bad_bit_widths(bits):
    with pytest.raises(CodecError, match="bits"):
        pack_bits(np.array([0]), bits)
    with pytest.raises(CodecError, match="bits"):
        unpack_bits(np.zeros(1, np.uint8), bits, 1)


@pytest.mark.parametrize("size", [0, 3, 5])
def test_unpack_rejects_streams_too_short_or_too_long(size):
    # 5 codes of 5 bits need exactly ceil(25 / 8) = 4 bytes.
    with pytest.raises(CodecError, match="expected 4"):
        unpack_bits(np.zeros(size, dtype=np.uint8), 5, 5)


def test_unpack_rejects_non_uint8_or_multidimensional_streams():
    with pytest.raises(CodecError, match="uint8"):
        unpack_bits(np.zeros(1, np.int8), 8, 1)
    with pytest.raises(CodecError, match="1-D"):
        unpack_bits(np.zeros((1, 1), np.uint8), 8, 1)


def test_unpack_rejects_set_padding_bits():
    with pytest.raises(CodecError, match="padding"):
        unpack_bits(np.array([0b1000], np.uint8), 3, 1)


@pytest.mark.parametrize("count", [-1, 1.0, True])
def test_unpack_rejects_bad_counts(count):
    with pytest.raises(CodecError, match="count"):
        unpack_bits(np.zeros(1, np.uint8), 8, count)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (256, 8), (257, 9), (2**32, 32)],
)
def test_index_bits_is_ceil_log2_with_minimum_one(n, expected):
    assert index_bits(n) == expected


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 2**40))
def test_index_bits_addresses_every_position_and_no_fewer_bits_would(n):
    bits = index_bits(n)
    assert 2**bits >= n
    assert bits == 1 or 2 ** (bits - 1) < n


@pytest.mark.parametrize("n", [-1, 1.5, True])
def test_index_bits_rejects_bad_counts(n):
    with pytest.raises(CodecError):
        index_bits(n)


@settings(max_examples=100, deadline=None)
@given(
    segments=st.lists(st.tuples(st.integers(1, 32), st.integers(0, 20)), max_size=6),
    seed=st.integers(0, 2**16),
)
def test_segments_pack_like_concatenated_pack_bits_and_round_trip(segments, seed):
    rng = np.random.default_rng(seed)
    widths = np.array([w for w, _ in segments], dtype=np.int64)
    counts = np.array([n for _, n in segments], dtype=np.int64)
    pieces = [rng.integers(0, 2**w, n) for w, n in segments]
    codes = np.concatenate([np.zeros(0, np.int64), *pieces])
    packed = pack_segments(codes, widths, counts)
    expected = [pack_bits(p, int(w)) for p, w in zip(pieces, widths, strict=True)]
    np.testing.assert_array_equal(packed, np.concatenate([np.zeros(0, np.uint8), *expected]))
    assert packed.size == int(segments_nbytes(widths, counts).sum())
    np.testing.assert_array_equal(unpack_segments(packed, widths, counts), codes)


@pytest.mark.parametrize("widths", [[3, 2], [9, 2]])
def test_segments_reject_set_padding_bits(widths):
    counts = np.array([3, 8])
    packed = pack_segments(np.zeros(11, np.int64), np.array(widths), counts)
    packed[segments_nbytes(np.array(widths[:1]), counts[:1])[0] - 1] |= 0x80  # last bit of seg 0
    with pytest.raises(CodecError, match="padding bits"):
        unpack_segments(packed, np.array(widths), counts)


def test_segments_reject_wrong_totals_and_lengths():
    with pytest.raises(CodecError, match="expected 3 codes"):
        pack_segments(np.zeros(2, np.int64), np.array([2]), np.array([3]))
    with pytest.raises(CodecError, match="bytes"):
        unpack_segments(np.zeros(3, np.uint8), np.array([3, 5]), np.array([3, 2]))


@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize("count", [0, 1, 7, 8, 13, 3 * 2**17 + 5])
def test_lanes_pack_like_pack_bits_and_round_trip(bits, count):
    codes = np.random.default_rng(bits + count).integers(0, 2**bits, count, dtype=np.uint8)
    packed = pack_lanes(codes, bits)
    np.testing.assert_array_equal(packed, pack_bits(codes, bits))
    unpacked = unpack_lanes(packed, bits, count)
    np.testing.assert_array_equal(unpacked[:count], codes)
    assert unpacked.size == -(-count // 8) * 8 and not unpacked[count:].any()


@pytest.mark.parametrize("widths", [[3, 5], [6, 7], [2, 4]])
def test_long_uint8_segments_pack_round_trip_and_reject_misfits_and_padding(widths):
    counts = np.array([LONG_SEGMENT + 3, LONG_SEGMENT + 1])
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 2**w, n, dtype=np.uint8) for w, n in zip(widths, counts, strict=True)]
    packed = pack_segments(np.concatenate(pieces), np.array(widths), counts)
    expected = [pack_bits(p, w) for p, w in zip(pieces, widths, strict=True)]
    np.testing.assert_array_equal(packed, np.concatenate(expected))
    np.testing.assert_array_equal(
        unpack_segments(packed, np.array(widths), counts, np.uint8), np.concatenate(pieces)
    )
    packed[expected[0].size - 1] |= 0x80  # a padding bit of the first segment
    with pytest.raises(CodecError, match="padding bits"):
        unpack_segments(packed, np.array(widths), counts)
    pieces[1][-1] = 2 ** widths[1]
    with pytest.raises(CodecError, match="fit"):
        pack_segments(np.concatenate(pieces), np.array(widths), counts)
