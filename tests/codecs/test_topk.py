"""Tests for the top-k sparsification codec."""

from decimal import Decimal, localcontext

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_split.codecs import CodecError
from flwr_split.codecs.bitpack import index_bits, pack_bits
from flwr_split.codecs.topk import TopK

ratios = st.floats(0.0, 0.999)

# Few distinct values, so that ties at the cut-off are common.
tied_vectors = hnp.arrays(
    np.float32, st.integers(0, 80), elements=st.sampled_from([0.0, -1.0, 1.0, 2.5, -2.5, 7.0])
)
random_vectors = hnp.arrays(np.float32, st.integers(0, 80), elements=st.floats(-1e3, 1e3, width=32))


@settings(max_examples=150, deadline=None)
@given(st.one_of(tied_vectors, random_vectors), ratios)
def test_keeps_exactly_k_entries_with_the_largest_magnitudes(values, ratio):
    codec = TopK(ratio=ratio)
    encoded = codec.encode(torch.from_numpy(values))
    k = codec.keep_count(values.size)
    assert encoded.meta["k"] == k == encoded.arrays["values"].size
    kept = np.sort(np.abs(encoded.arrays["values"]))
    reference = np.sort(np.abs(values))[values.size - k :]
    np.testing.assert_array_equal(kept, reference)
    decoded = codec.decode(encoded).numpy()
    # Every entry decodes to itself or to zero, and exactly the kept values survive.
    assert np.all((decoded == values) | (decoded == 0))
    np.testing.assert_array_equal(np.sort(np.abs(decoded))[values.size - k :], reference)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3000), ratios)
def test_keep_count_is_floor_of_kept_fraction_times_numel(n, ratio):
    with localcontext(prec=1000):  # enough digits to be exact even for subnormal ratios
        expected = int((1 - Decimal(repr(ratio))) * n)
    assert TopK(ratio=ratio).keep_count(n) == expected


@pytest.mark.parametrize(
    ("ratio", "n", "k"),
    [(0.9, 10, 1), (0.99, 100, 1), (0.7, 10, 3), (0.5, 7, 3), (0.0, 5, 5), (0.99, 99, 0)],
)
def test_keep_count_uses_the_decimal_ratio_not_its_float_rounding(ratio, n, k):
    assert TopK(ratio=ratio).keep_count(n) == k


def test_ties_at_the_cut_off_go_to_lower_positions():
    x = torch.tensor([1.0, -3.0, 2.0, -2.0, 2.0, 0.5, 2.0])
    decoded = TopK(ratio=0.5).decode(TopK(ratio=0.5).encode(x))  # k = 3
    assert decoded.tolist() == [0.0, -3.0, 2.0, -2.0, 0.0, 0.0, 0.0]


def test_values_are_sent_in_ascending_position_order():
    x = torch.tensor([5.0, 0.0, -9.0, 1.0, 7.0])
    encoded = TopK(ratio=0.4).encode(x)  # k = 3
    assert encoded.arrays["values"].tolist() == [5.0, -9.0, 7.0]


def _expected_index_bytes(n: int, k: int) -> tuple[str, int]:
    bitmap, packed = -(-n // 8), -(-k * index_bits(n) // 8)
    return ("packed", packed) if packed < bitmap else ("bitmap", bitmap)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 5000), ratios)
def test_nbytes_is_values_plus_the_smaller_index_format(n, ratio):
    codec = TopK(ratio=ratio)
    encoded = codec.encode(torch.randn(n))
    k = codec.keep_count(n)
    index_format, index_bytes = _expected_index_bytes(n, k)
    assert encoded.meta["index_format"] == index_format
    assert codec.nbytes(encoded) == 4 * k + index_bytes
    assert set(encoded.arrays) == {"values", "indices" if index_format == "packed" else "bitmap"}


@pytest.mark.parametrize(
    ("ratio", "n", "index_format"),
    [(0.99, 1000, "packed"), (0.5, 1000, "bitmap"), (0.0, 16, "bitmap"), (0.9, 64, "packed")],
)
def test_index_format_examples(ratio, n, index_format):
    assert TopK(ratio=ratio).encode(torch.randn(n)).meta["index_format"] == index_format


def test_ratio_zero_is_lossless():
    x = torch.randn(4, 5)
    assert torch.equal(TopK(ratio=0.0).decode(TopK(ratio=0.0).encode(x)), x)


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5, float("nan"), "0.5", True, None])
def test_constructor_rejects_ratio_outside_zero_to_one(ratio):
    with pytest.raises(CodecError, match="ratio"):
        TopK(ratio=ratio)


def test_integer_ratio_zero_is_accepted_as_float():
    assert TopK(ratio=0).get_config() == {"id": "topk", "ratio": 0.0}


def _bitmap_payload():
    codec = TopK(ratio=0.5)
    encoded = codec.encode(torch.tensor([1.0, -5.0, 3.0, 0.0, 2.0, -4.0, 0.5, 6.0]))  # k = 4
    assert encoded.meta["index_format"] == "bitmap"
    return codec, encoded


def _packed_payload():
    codec = TopK(ratio=0.9)
    encoded = codec.encode(torch.arange(40.0))  # k = 4, positions 36..39
    assert encoded.meta["index_format"] == "packed"
    return codec, encoded


def test_decode_rejects_bitmap_with_wrong_number_of_set_bits():
    codec, encoded = _bitmap_payload()
    encoded.arrays["bitmap"] = pack_bits(np.array([1, 1, 1, 0, 0, 0, 0, 0]), 1)
    with pytest.raises(CodecError, match="marks 3 positions"):
        codec.decode(encoded)


def test_decode_rejects_packed_indices_not_strictly_ascending():
    codec, encoded = _packed_payload()
    width = index_bits(40)
    for positions in ([36, 37, 37, 39], [39, 38, 37, 36]):
        encoded.arrays["indices"] = pack_bits(np.array(positions), width)
        with pytest.raises(CodecError, match="ascending"):
            codec.decode(encoded)


def test_decode_rejects_packed_indices_out_of_range():
    codec, encoded = _packed_payload()
    encoded.arrays["indices"] = pack_bits(np.array([1, 2, 3, 63]), index_bits(40))
    with pytest.raises(CodecError, match="out of range"):
        codec.decode(encoded)


@pytest.mark.parametrize("k", [3, 5, -1, 4.0, "4", None])
def test_decode_rejects_k_that_disagrees_with_ratio_or_is_not_int(k):
    codec, encoded = _packed_payload()
    encoded.meta["k"] = k
    with pytest.raises(CodecError, match="k"):
        codec.decode(encoded)


def test_decode_rejects_payload_from_codec_with_other_ratio():
    _, encoded = _packed_payload()
    with pytest.raises(CodecError, match="ratio"):
        TopK(ratio=0.5).decode(encoded)


@pytest.mark.parametrize("index_format", ["dense", "", None, 1])
def test_decode_rejects_unknown_index_format(index_format):
    codec, encoded = _bitmap_payload()
    encoded.meta["index_format"] = index_format
    with pytest.raises(CodecError, match="index_format"):
        codec.decode(encoded)


def test_decode_rejects_index_format_naming_an_absent_array():
    codec, encoded = _bitmap_payload()
    encoded.meta["index_format"] = "packed"
    with pytest.raises(CodecError, match="missing array 'indices'"):
        codec.decode(encoded)


def test_decode_rejects_non_finite_values():
    codec, encoded = _packed_payload()
    encoded.arrays["values"][1] = np.inf
    with pytest.raises(CodecError, match="NaN or inf"):
        codec.decode(encoded)
