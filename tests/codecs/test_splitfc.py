"""Tests for the SplitFC-style codec (drop low-spread features, quantize the rest)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.codecs import CodecContext, CodecError, get_codec
from flwr_split.codecs.bitpack import packed_nbytes, unpack_bits
from flwr_split.codecs.blocks import decoding_table
from flwr_split.codecs.splitfc import SplitFC, feature_view


def _features(spreads: list[float], batch: int = 6, size: int = 9) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, len(spreads), size, generator=gen)
    return x * torch.tensor(spreads)[:, None] + torch.arange(len(spreads))[:, None]


def test_keeps_the_features_of_largest_spread_and_sends_means_of_the_others():
    x = _features([0.1, 5.0, 0.01, 3.0, 1.0])
    codec = SplitFC(keep=0.4, bits=8)
    decoded = codec.decode(codec.encode(x))
    for dropped in (0, 2, 4):
        torch.testing.assert_close(decoded[:, dropped], x[:, dropped].mean().expand(6, 9))
    for kept in (1, 3):
        step = float(x[:, kept].max() - x[:, kept].min()) / 255
        assert float((decoded[:, kept] - x[:, kept]).abs().max()) <= step / 2 + 1e-5


@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple),
    keep=st.floats(0.01, 1.0),
    bits=st.integers(1, 16),
)
def test_nbytes_follows_the_layout(shape, keep, bits):
    codec = SplitFC(keep=keep, bits=bits)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    batch, features, size = feature_view(shape)
    k = math.ceil(codec.keep * features - 1e-12)
    assert codec.keep_count(features) == k
    expected = packed_nbytes(1, features) + 4 * (features - k) + 8 * k
    expected += packed_nbytes(bits, k * batch * size)
    assert codec.nbytes(codec.encode(x)) == expected


def test_keep_one_is_per_feature_min_max_quantization():
    x = _features([1.0, 2.0, 3.0])
    codec = SplitFC(keep=1.0, bits=16)
    torch.testing.assert_close(codec.decode(codec.encode(x)), x, atol=1e-3, rtol=0)


def test_ties_keep_the_lower_feature_index():
    x = torch.ones(4, 3, 2) * torch.tensor([1.0, 2.0, 3.0])[:, None]  # every spread is 0
    mask = np.unpackbits(SplitFC(keep=0.34).encode(x).arrays["mask"], bitorder="little")
    assert mask[:3].tolist() == [1, 1, 0]


def test_stochastic_rounding_depends_only_on_the_seed():
    codec = get_codec("splitfc:keep=0.5,bits=2,stochastic=true")
    x = _features([1.0, 2.0, 3.0, 4.0])
    first, again = codec.encode(x, CodecContext(3)), codec.encode(x, CodecContext(3))
    np.testing.assert_array_equal(first.arrays["codes"], again.arrays["codes"])
    other = codec.encode(x, CodecContext(4))
    assert not np.array_equal(first.arrays["codes"], other.arrays["codes"])


def test_decode_rejects_a_mask_with_the_wrong_number_of_kept_features():
    codec = SplitFC(keep=0.5)
    encoded = codec.encode(_features([1.0, 2.0, 3.0, 4.0]))
    encoded.arrays["mask"] = np.array([0b0111], dtype=np.uint8)
    with pytest.raises(CodecError, match="keeps 3 features"):
        codec.decode(encoded)


def test_decode_rejects_inverted_ranges_and_nan_means():
    codec = SplitFC(keep=0.5)
    encoded = codec.encode(_features([1.0, 2.0, 3.0, 4.0]))
    encoded.arrays["ranges"] = encoded.arrays["ranges"][::-1].copy()
    with pytest.raises(CodecError, match="lo > hi"):
        codec.decode(encoded)
    encoded = codec.encode(_features([1.0, 2.0, 3.0, 4.0]))
    encoded.arrays["means"][0] = np.nan
    with pytest.raises(CodecError, match="NaN"):
        codec.decode(encoded)


@pytest.mark.parametrize("options", [{"keep": 0.0}, {"keep": 1.1}, {"bits": 0}, {"stochastic": 1}])
def test_bad_options_raise(options):
    with pytest.raises(CodecError, match="splitfc"):
        SplitFC(**options)


@pytest.mark.parametrize("shape", [(3, 4, 5), (4, 4, 6), (2, 5, 8)])  # odd, even, whole bytes
@pytest.mark.parametrize("bits", [3, 4, 12])
def test_decode_reads_codes_feature_by_feature_whether_or_not_they_start_on_a_byte(shape, bits):
    codec = SplitFC(keep=0.5, bits=bits)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    encoded = codec.encode(x)
    batch, features, size = feature_view(shape)
    k = codec.keep_count(features)
    codes = unpack_bits(encoded.arrays["codes"], bits, k * batch * size).reshape(k, batch, size)
    kept = np.flatnonzero(np.unpackbits(encoded.arrays["mask"], bitorder="little")[:features])
    ranges = encoded.arrays["ranges"].reshape(k, 2).tolist()
    decoded = codec.decode(encoded).numpy()
    for row, feature in enumerate(kept):
        expected = decoding_table(*ranges[row], codec.levels)[codes[row]]
        np.testing.assert_array_equal(decoded[:, feature], expected)
