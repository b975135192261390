"""Tests for the float16 codec."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_split.codecs import CodecError, Encoded, get_codec
from flwr_split.codecs.fp16 import FP16_MAX, Fp16


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 300))
def test_nbytes_is_two_per_element(n):
    codec = Fp16()
    assert codec.nbytes(codec.encode(torch.randn(n))) == 2 * n


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(
        np.float32,
        st.integers(1, 50),
        elements=st.floats(-FP16_MAX, FP16_MAX, width=32),
    )
)
def test_round_trip_matches_numpy_float16_rounding(values):
    codec = Fp16()
    decoded = codec.decode(codec.encode(torch.from_numpy(values)))
    np.testing.assert_array_equal(decoded.numpy(), values.astype(np.float16).astype(np.float32))


def test_relative_error_of_normal_values_is_at_most_2_to_minus_11():
    x = torch.linspace(-1000.0, 1000.0, 4001)
    x = x[x.abs() >= 2**-14]
    codec = Fp16()
    error = (codec.decode(codec.encode(x)) - x).abs() / x.abs()
    assert float(error.max()) <= 2**-11


def test_fp16_maximum_is_accepted_and_exact():
    x = torch.tensor([FP16_MAX, -FP16_MAX])
    codec = Fp16()
    assert torch.equal(codec.decode(codec.encode(x)), x)


@pytest.mark.parametrize("value", [65504.01, -65520.0, 1e6, -3e38])
def test_magnitudes_beyond_fp16_maximum_raise(value):
    with pytest.raises(CodecError, match="float16 maximum"):
        Fp16().encode(torch.tensor([0.0, value]))


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_decode_rejects_non_finite_payload_values(bad):
    encoded = Encoded({"values": np.array([1.0, bad], np.float16)}, {"shape": [2]})
    with pytest.raises(CodecError, match="NaN or inf"):
        Fp16().decode(encoded)


def test_fp16_takes_no_options():
    assert Fp16().get_config() == {"id": "fp16"}
    with pytest.raises(CodecError, match="bad options"):
        get_codec("fp16:bits=8")
