"""Tests for the PowerQuant-style codec (power-function non-uniform quantization)."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_split.codecs import CodecError, get_codec
from flwr_split.codecs.bitpack import unpack_codes
from flwr_split.codecs.blocks import quantize_blocks
from flwr_split.codecs.powerquant import PowerQuant
from flwr_split.codecs.quant import Quant

vectors = hnp.arrays(np.float32, st.integers(1, 60), elements=st.floats(-1e4, 1e4, width=32))


@settings(max_examples=100, deadline=None)
@given(vectors, st.integers(1, 12), st.floats(0.1, 1.0))
def test_error_is_half_a_step_in_the_power_domain(values, bits, alpha):
    x = torch.from_numpy(values)
    codec = PowerQuant(bits=bits, alpha=alpha)
    decoded = codec.decode(codec.encode(x)).double()

    def power(t: torch.Tensor) -> torch.Tensor:
        return torch.sign(t) * t.abs() ** alpha

    y = power(x.double())
    step = float(y.max() - y.min()) / (2**bits - 1)
    slack = 1e-4 * float(y.abs().max()) + 1e-6
    assert float((power(decoded) - y).abs().max()) <= step / 2 + slack


def test_alpha_one_equals_uniform_quantization():
    x = torch.randn(500, generator=torch.Generator().manual_seed(0))
    power, uniform = PowerQuant(bits=3, alpha=1.0), Quant(bits=3)
    np.testing.assert_array_equal(
        power.encode(x).arrays["codes"], uniform.encode(x).arrays["codes"]
    )
    torch.testing.assert_close(power.decode(power.encode(x)), uniform.decode(uniform.encode(x)))


def test_small_values_are_kept_more_finely_than_by_uniform_quantization():
    # Heavy-tailed data: most mass near zero, a few outliers set the range.
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(10_000, generator=gen) * torch.rand(10_000, generator=gen) ** 4
    x[0] = 20.0
    power, uniform = PowerQuant(bits=3, alpha=0.5), Quant(bits=3)
    assert power.nbytes(power.encode(x)) == uniform.nbytes(uniform.encode(x))
    power_mse = float((power.decode(power.encode(x)) - x).square().mean())
    uniform_mse = float((uniform.decode(uniform.encode(x)) - x).square().mean())
    assert power_mse < uniform_mse


def test_signs_survive_and_spec_string_builds_it():
    codec = get_codec("powerquant:bits=4,alpha=0.5")
    assert codec.get_config() == {"id": "powerquant", "bits": 4, "alpha": 0.5, "stochastic": False}
    x = torch.tensor([-3.0, -0.5, 0.5, 3.0])
    decoded = codec.decode(codec.encode(x))
    assert torch.equal(torch.sign(decoded), torch.sign(x))


@pytest.mark.parametrize(
    "options", [{"alpha": 0.0}, {"alpha": 1.5}, {"alpha": True}, {"bits": 0}, {"bits": 17}]
)
def test_bad_options_raise(options):
    with pytest.raises(CodecError, match="powerquant"):
        PowerQuant(**options)


def test_a_payload_made_with_another_exponent_is_refused():
    tensor = torch.randn(4, 8)
    encoded = get_codec("powerquant:bits=4,alpha=0.5").encode(tensor)
    assert encoded.meta["alpha"] == 0.5
    with pytest.raises(CodecError, match="alpha=0.5, this codec uses 0.25"):
        get_codec("powerquant:bits=4,alpha=0.25").decode(encoded)
    with pytest.raises(CodecError, match="alpha"):
        get_codec("powerquant:bits=4,alpha=0.5").decode(get_codec("quant:bits=4").encode(tensor))


def test_a_range_whose_inverse_overflows_float32_is_refused():
    codec = get_codec("powerquant:bits=4,alpha=0.5")
    encoded = codec.encode(torch.linspace(-1, 1, 16))
    encoded.arrays["range"] = np.array([-3e38, 3e38], np.float32)  # finite, but y**2 is not
    with pytest.raises(CodecError, match="beyond float32"):
        codec.decode(encoded)


@pytest.mark.parametrize("alpha", [0.5, 0.3])
def test_non_negative_input_skips_sign_passes_with_the_same_codes(alpha):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(3, 70_000, generator=generator).relu()  # several blocks, many zeros
    x[0, :5] = -0.0
    codec = PowerQuant(bits=5, alpha=alpha)
    lo, hi = (np.float32(codec.forward(float(end))) for end in (x.min(), x.max()))
    flat = x.numpy().reshape(-1)
    signed = quantize_blocks(flat, lo, hi, codec.levels, None, codec.block_forward(-1.0))
    np.testing.assert_array_equal(
        unpack_codes(codec.encode(x).arrays["codes"], 5, flat.size), signed
    )
