"""Tests for the uniform min-max quantization codec."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_split.codecs import CodecContext, CodecError, Encoded
from flwr_split.codecs.quant import Quant

finite_vectors = hnp.arrays(
    np.float32,
    st.integers(1, 60),
    elements=st.floats(-1e6, 1e6, width=32),
)


def _step(x: torch.Tensor, bits: int) -> float:
    return (float(x.max()) - float(x.min())) / (2**bits - 1)


def _float32_codes(bits: int) -> float:
    """Steps that codes computed in float32 may add to the rounding error (see `Quant`)."""
    return 2.0 ** (bits - 22)


def _float32_slack(x: torch.Tensor) -> float:
    """One float32 rounding of the largest magnitude, plus float64 noise."""
    return float(x.abs().max()) * 2**-23 + 1e-30


@settings(max_examples=100, deadline=None)
@given(finite_vectors, st.integers(1, 16))
def test_deterministic_error_is_at_most_half_a_step_and_float32_slack(values, bits):
    x = torch.from_numpy(values)
    codec = Quant(bits=bits)
    error = (codec.decode(codec.encode(x)) - x).abs().max()
    assert float(error) <= _step(x, bits) * (0.5 + _float32_codes(bits)) + _float32_slack(x)


@settings(max_examples=100, deadline=None)
@given(finite_vectors, st.integers(1, 16), st.integers(0, 2**31))
def test_stochastic_error_is_at_most_one_step_and_float32_slack(values, bits, seed):
    x = torch.from_numpy(values)
    codec = Quant(bits=bits, stochastic=True)
    error = (codec.decode(codec.encode(x, CodecContext(seed))) - x).abs().max()
    assert float(error) <= _step(x, bits) * (1 + _float32_codes(bits)) + _float32_slack(x)


def test_stochastic_rounding_is_unbiased_on_average():
    # Range [0, 1] with 1 bit: 0.3 must decode to 1 with probability 0.3.
    n = 100_000
    x = torch.full((n,), 0.3)
    x[0], x[1] = 0.0, 1.0
    stochastic, nearest = Quant(bits=1, stochastic=True), Quant(bits=1)
    mean = float(stochastic.decode(stochastic.encode(x, CodecContext(seed=7)))[2:].mean())
    assert abs(mean - 0.3) < 0.01  # standard error is 0.0014
    assert float(nearest.decode(nearest.encode(x))[2:].mean()) == 0.0


def test_stochastic_rounding_mean_error_vanishes_on_random_data():
    x = torch.randn(50_000, generator=torch.Generator().manual_seed(3))
    codec = Quant(bits=2, stochastic=True)
    bias = float((codec.decode(codec.encode(x, CodecContext(seed=11))) - x).mean())
    assert abs(bias) < 5 * _step(x, 2) / np.sqrt(x.numel())


def test_same_seed_gives_same_encoding_and_different_seeds_differ():
    x = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    codec = Quant(bits=4, stochastic=True)
    first, again = codec.encode(x, CodecContext(5)), codec.encode(x, CodecContext(5))
    np.testing.assert_array_equal(first.arrays["codes"], again.arrays["codes"])
    other = codec.encode(x, CodecContext(6))
    assert not np.array_equal(first.arrays["codes"], other.arrays["codes"])


def test_missing_context_means_seed_zero():
    x = torch.randn(200)
    codec = Quant(bits=3, stochastic=True)
    np.testing.assert_array_equal(
        codec.encode(x).arrays["codes"], codec.encode(x, CodecContext(0)).arrays["codes"]
    )


@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 100, 1001])
def test_nbytes_is_packed_codes_plus_eight_range_bytes(bits, n):
    codec = Quant(bits=bits)
    encoded = codec.encode(torch.randn(n))
    assert codec.nbytes(encoded) == -(-bits * n // 8) + 8
    assert encoded.arrays["range"].nbytes == 8


def test_grid_points_are_reconstructed_exactly():
    x = torch.tensor([0.0, 1.0, 2.0, 3.0, 1.0])
    codec = Quant(bits=2)
    assert torch.equal(codec.decode(codec.encode(x)), x)


@pytest.mark.parametrize("stochastic", [False, True])
def test_constant_tensor_decodes_to_its_value_exactly(stochastic):
    x = torch.full((3, 4), -2.75)
    codec = Quant(bits=5, stochastic=stochastic)
    encoded = codec.encode(x)
    assert encoded.arrays["range"].tolist() == [-2.75, -2.75]
    assert torch.equal(codec.decode(encoded), x)


def test_empty_tensor_sends_zero_range_and_no_codes():
    encoded = Quant().encode(torch.empty(0, 3))
    assert encoded.arrays["codes"].size == 0
    assert encoded.arrays["range"].tolist() == [0.0, 0.0]
    assert Quant().decode(encoded).shape == (0, 3)


def test_extreme_float32_range_decodes_finite_and_within_range():
    big = float(np.finfo(np.float32).max)
    x = torch.tensor([-big, 0.0, big])
    codec = Quant(bits=8)
    decoded = codec.decode(codec.encode(x))
    assert torch.isfinite(decoded).all()
    assert decoded[0] == -big and decoded[2] == big


@pytest.mark.parametrize("bits", [0, 17, -1, 8.0, "8", True, None])
def test_constructor_rejects_invalid_bits(bits):
    with pytest.raises(CodecError, match="bits"):
        Quant(bits=bits)


@pytest.mark.parametrize("stochastic", [1, "true", None])
def test_constructor_rejects_non_bool_stochastic(stochastic):
    with pytest.raises(CodecError, match="stochastic"):
        Quant(stochastic=stochastic)


def _payload(**meta_overrides):
    encoded = Quant(bits=4).encode(torch.arange(10.0))
    encoded.meta.update(meta_overrides)
    return encoded


def test_decode_rejects_payload_quantized_with_other_bit_width():
    encoded = Quant(bits=4).encode(torch.arange(10.0))
    with pytest.raises(CodecError, match="bits=4, this codec uses 8"):
        Quant(bits=8).decode(encoded)


@pytest.mark.parametrize("bits", [None, "4", 4.0, True])
def test_decode_rejects_missing_or_non_int_bits_meta(bits):
    with pytest.raises(CodecError, match="bits"):
        Quant(bits=4).decode(_payload(bits=bits))


@pytest.mark.parametrize("bad_range", [[1.0, 0.0], [0.0, np.inf], [np.nan, 1.0], [-np.inf, np.inf]])
def test_decode_rejects_reversed_or_non_finite_range(bad_range):
    encoded = _payload()
    encoded.arrays["range"] = np.array(bad_range, np.float32)
    with pytest.raises(CodecError, match="range"):
        Quant(bits=4).decode(encoded)


def test_decode_rejects_codes_with_set_padding_bits():
    encoded = Encoded(
        {"codes": np.array([0xFF], np.uint8), "range": np.array([0, 1], np.float32)},
        {"shape": [1], "bits": 4},
    )
    with pytest.raises(CodecError, match="padding"):
        Quant(bits=4).decode(encoded)
