"""Tests for the SL-FAC codec: the spec's checks 1-11 (shared/specs/sl_fac.md section 7)."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.codecs import CodecContext, get_codec
from flwr_split.codecs.dct import (
    KRON_MAX_POSITIONS,
    band_layout,
    dct2,
    dct2_bands,
    dct_matrix,
    idct2,
    idct2_bands,
)
from flwr_split.codecs.quant import Quant
from flwr_split.codecs.slfac import SLFAC, planes_shape
from tests.codecs.slfac_cases import (
    band_energy,
    formula_nbytes,
    randn,
    smooth,
    wire_stream,
)


# ------------------------------------------------------------------ check 1
def test_dct_is_orthonormal_and_round_trips():
    x = randn(3, 4, 5, 7)
    coeffs = dct2(x)
    assert float((idct2(coeffs) - x).abs().max()) < 1e-5
    assert float(coeffs.square().sum() / x.square().sum() - 1).__abs__() < 1e-5
    for n in (1, 5, 7, 8):
        torch.testing.assert_close(dct_matrix(n) @ dct_matrix(n).T, torch.eye(n), atol=1e-6, rtol=0)
    single = randn(2, 3, 1, 1)
    assert torch.equal(dct2(single), single)


@pytest.mark.parametrize(
    "side", [(4, 4), (1, 40), (8, 8), (5, 7), (16, 17), (1, 300), (1, 1), (32, 32)]
)
def test_band_ordered_transform_is_the_dct_in_band_order_and_inverts(side):
    height, width = side  # (16, 17), (1, 300) and (32, 32) exceed KRON_MAX_POSITIONS
    x = randn(3, 2, height, width, seed=3)
    coeffs = dct2_bands(x)
    in_band_order = dct2(x).reshape(3, 2, -1)[..., band_layout(height, width)[0]]
    torch.testing.assert_close(coeffs, in_band_order, atol=1e-5, rtol=0)
    torch.testing.assert_close(idct2_bands(coeffs, height, width), x, atol=1e-5, rtol=0)
    assert (height * width <= KRON_MAX_POSITIONS) == (side not in [(16, 17), (1, 300), (32, 32)])


@pytest.mark.parametrize("side", [(16, 17), (16, 32), (40, 40), (1, 300)])
def test_separable_path_is_bit_identical_to_dct2_then_gather(side):
    """The transposed second matmul and the numpy gathers change no bit (pinned payloads).

    32 x 32 planes take Lee's algorithm instead (tests/codecs/test_slfac_lee.py).
    """
    height, width = side
    x = randn(4, 3, height, width, seed=5)
    in_band_order = dct2(x).reshape(4, 3, -1)[..., band_layout(height, width)[0]]
    assert torch.equal(dct2_bands(x), in_band_order)
    planes = in_band_order[..., torch.argsort(band_layout(height, width)[0])]
    assert torch.equal(idct2_bands(in_band_order, height, width), idct2(planes.reshape(x.shape)))


def test_one_dimensional_path_round_trips_vectors_and_sequences():
    codec = SLFAC(theta=1.0, bmin=24, bmax=24)
    for shape in [(6, 50), (4, 32, 40), (9,)]:
        x = randn(*shape)
        assert planes_shape(shape)[2] == 1
        torch.testing.assert_close(codec.decode(codec.encode(x)), x, atol=1e-5, rtol=0)


# ------------------------------------------------------------------ check 2
@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)),
    theta=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**16),
)
def test_cutoff_is_the_first_band_reaching_theta(shape, theta, seed):
    x = randn(*shape, seed=seed)
    cutoffs = SLFAC(theta=theta).quantize(x, CodecContext()).cutoffs
    cumulative = torch.cumsum(band_energy(x), 1)
    total = cumulative[:, -1]
    for c, r in enumerate(cutoffs.tolist()):
        assert cumulative[c, r] >= theta * total[c] * (1 - 1e-9)
        if r > 0:
            assert cumulative[c, r - 1] < theta * total[c] * (1 + 1e-9)


def test_theta_one_keeps_every_band_and_constant_channels_stay_at_dc():
    x = randn(2, 3, 5, 6)
    quantized = SLFAC(theta=1.0).quantize(x, CodecContext())
    assert quantized.cutoffs.tolist() == [5 + 6 - 2] * 3
    assert quantized.bits[1::2].tolist() == [0, 0, 0]  # every H_c is empty
    constant = torch.ones(2, 3, 5, 6) * torch.tensor([1.0, -2.0, 0.0])[:, None, None]
    assert SLFAC().quantize(constant, CodecContext()).cutoffs.tolist() == [0, 0, 0]


def test_tensor_scope_sends_one_cutoff():
    encoded = SLFAC(cutoff_scope="tensor").encode(randn(4, 6, 8, 8))
    assert encoded.arrays["cutoffs"].shape == (1,)


# ------------------------------------------------------------------ check 3
@settings(max_examples=60, deadline=None)
@given(
    bmin=st.integers(1, 8),
    extra=st.integers(0, 8),
    alloc=st.sampled_from(["log_density", "two_level", "rd_log"]),
    hf_drop=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_bits_stay_in_range(bmin, extra, alloc, hf_drop, seed):
    bmax = bmin + extra
    codec = SLFAC(bmin=bmin, bmax=bmax, alloc=alloc, hf_drop=hf_drop, mean_bits=bmin)
    x = randn(3, 5, 6, 7, seed=seed) * torch.rand(5)[:, None, None]
    quantized = codec.quantize(x, CodecContext())
    counts = codec._counts_for(tuple(x.shape), quantized.cutoffs.numpy())
    bits = quantized.bits.numpy()
    low, high = bits[0::2][counts[0::2] > 0], bits[1::2][counts[1::2] > 0]
    assert np.all((low >= bmin) & (low <= bmax))
    assert np.all(high == 0) if hf_drop else np.all((high >= bmin) & (high <= bmax))


def test_log_density_bits_are_monotone_in_density():
    x = randn(8, 6, 8, 8) * torch.tensor([1e-3, 0.1, 1.0, 3.0, 10.0, 100.0])[:, None, None]
    codec = SLFAC()
    quantized = codec.quantize(x, CodecContext())
    counts = codec._counts_for(tuple(x.shape), quantized.cutoffs.numpy())
    stream, component = wire_stream(x, quantized.cutoffs)
    stream_energy = torch.zeros(12, dtype=torch.float64).index_add_(0, component, stream.square())
    present = counts > 0
    density = (stream_energy.numpy() / np.maximum(counts, 1))[present]
    bits = quantized.bits.numpy()[present]
    ranked = bits[np.argsort(density)]
    assert np.all(np.diff(ranked) >= 0)
    assert bits.min() == 2 and bits.max() == 8


def test_equal_densities_get_bmax():
    x = torch.ones(2, 3, 4, 4)  # DC only: one component per channel, all equal
    assert SLFAC().quantize(x, CodecContext()).bits[0::2].tolist() == [8, 8, 8]


def test_two_level_gives_bmax_to_low_and_bmin_to_high():
    codec = SLFAC(alloc="two_level", bmin=3, bmax=7)
    quantized = codec.quantize(randn(4, 2, 8, 8), CodecContext())
    assert quantized.bits.tolist() == [7, 3, 7, 3]


# ------------------------------------------------------------------ check 4
@settings(max_examples=40, deadline=None)
@given(bits=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_quantizer_error_bound_and_parseval(bits, seed):
    codec = SLFAC(bmin=bits, bmax=bits)
    x = randn(3, 4, 5, 7, seed=seed)
    quantized = codec.quantize(x, CodecContext())
    sent = quantized.bits > 0
    assert int(quantized.codes.min()) >= 0 and int(quantized.codes.max()) <= 2**bits - 1
    stream, component = wire_stream(x, quantized.cutoffs)
    step = ((quantized.hi - quantized.lo) / (2**bits - 1))[component]
    decoded_stream = quantized.lo[component] + quantized.codes * step
    assert bool(sent[component].all())
    assert bool(((decoded_stream - stream).abs() <= step / 2 + 1e-6).all())
    decoded = codec.decode(codec.encode(x))
    spatial = float((x.double() - decoded.double()).square().sum())
    spectral = float((decoded_stream.float().double() - stream).square().sum())
    # The float32 inverse DCT rounds each decoded value by a few ulp; at 12 bits that
    # rounding is no longer small against the quantization error, so allow its effect:
    # |spatial - spectral| <= 2 ||q|| ||r|| + ||r||^2, r the rounding, q the quantization error.
    rounding = x.numel() ** 0.5 * 8 * float(torch.finfo(torch.float32).eps) * float(x.abs().max())
    allowed = 2 * spectral**0.5 * rounding + rounding**2
    assert spatial == pytest.approx(spectral, rel=1e-4, abs=allowed)


# ------------------------------------------------------------------ check 5
def test_near_lossless_at_24_bits_and_exact_passthrough():
    x = randn(3, 4, 5, 7) * 50
    codec = SLFAC(theta=1.0, bmin=24, bmax=24)
    error = float((codec.decode(codec.encode(x)) - x).abs().max())
    assert error <= 1e-5 * float(x.max() - x.min())
    passthrough = SLFAC(passthrough=True)
    encoded = passthrough.encode(x)
    assert torch.equal(passthrough.decode(encoded), x)
    assert passthrough.nbytes(encoded) == 4 * x.numel()


# ------------------------------------------------------------------ check 6
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 9), (1, 1, 1, 1)])
def test_all_zero_and_constant_inputs_decode_exactly(shape):
    codec = SLFAC()
    for value in (0.0, 3.25):
        x = torch.full(shape, value)
        decoded = codec.decode(codec.encode(x))
        assert torch.isfinite(decoded).all()
        torch.testing.assert_close(decoded, x, atol=1e-5, rtol=1e-6)


def test_empty_high_component_is_skipped():
    encoded = SLFAC(theta=1.0).encode(randn(2, 1, 4, 4))  # every band is low
    assert encoded.arrays["bits"].tolist() == [8]  # only L_0 is on the wire
    assert encoded.arrays["ranges"].size == 2


# ------------------------------------------------------------------ check 7
@settings(max_examples=60, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 9), st.integers(1, 9)),
    theta=st.floats(0.05, 1.0),
    hf_drop=st.booleans(),
    scope=st.sampled_from(["channel", "tensor"]),
    seed=st.integers(0, 2**16),
)
def test_wire_size_equals_the_formula(shape, theta, hf_drop, scope, seed):
    codec = SLFAC(theta=theta, hf_drop=hf_drop, cutoff_scope=scope)
    x = randn(*shape, seed=seed).relu()
    assert codec.nbytes(codec.encode(x)) == formula_nbytes(codec, x)


def test_decode_equals_dequantization_without_serialization():
    codec = SLFAC(stochastic=True)
    x = randn(4, 3, 7, 5)
    ctx = CodecContext(seed=9)
    direct = codec.reconstruct(codec.quantize(x, ctx))
    decoded = codec.decode(codec.encode(x, ctx))
    assert torch.equal(decoded, direct)
    assert torch.equal(codec.decode(codec.encode(x, ctx)), decoded)


# ------------------------------------------------------------------ check 8
def test_stochastic_rounding_is_unbiased():
    x = randn(1, 1, 4, 4)
    codec = SLFAC(theta=1.0, bmin=2, bmax=2, stochastic=True)
    coeffs = dct2(x)
    step = float(coeffs.max() - coeffs.min()) / 3
    draws = 2000
    mean = sum(codec.decode(codec.encode(x, CodecContext(seed))) for seed in range(draws)) / draws
    # Per coefficient within 3 standard errors; the inverse DCT is orthonormal.
    assert float((dct2(mean) - coeffs).abs().max()) <= 3 * step / math.sqrt(draws)


# ------------------------------------------------------------------ check 9
def test_gradient_path_through_the_codecs():
    torch.manual_seed(0)
    bottom = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU())
    top = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 3))
    x, y = randn(5, 1, 6, 6), torch.tensor([0, 1, 2, 0, 1])
    torch.nn.functional.cross_entropy(top(bottom(x)), y).backward()
    reference = [p.grad.clone() for p in bottom.parameters()]

    def split_step(up: SLFAC, down: SLFAC) -> tuple[list[torch.Tensor], torch.Tensor]:
        bottom.zero_grad()
        acts = bottom(x)
        smashed = up.decode(up.encode(acts.detach())).requires_grad_()
        torch.nn.functional.cross_entropy(top(smashed), y).backward()
        received = down.decode(down.encode(smashed.grad))
        acts.backward(received)
        return [p.grad.clone() for p in bottom.parameters()], received

    grads, _ = split_step(SLFAC(passthrough=True), SLFAC(passthrough=True))
    for got, want in zip(grads, reference, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    down = SLFAC(theta=0.8)
    _, received = split_step(SLFAC(), down)
    acts = bottom(x).detach()
    smashed = SLFAC().decode(SLFAC().encode(acts)).requires_grad_()
    torch.nn.functional.cross_entropy(top(smashed), y).backward()
    assert torch.equal(received, down.decode(down.encode(smashed.grad)))


# ------------------------------------------------------------------ check 10
@pytest.mark.parametrize("options", [{"theta": 0.999}, {"hf_drop": True}])
def test_smooth_inputs_beat_uniform_quantization_at_equal_bytes(options):
    # With the default theta = 0.9 the 2-bit high component of smooth data has no
    # level at zero and SL-FAC loses (docs/slfac.md, "check 10"); these settings win.
    x = smooth(16, 8, 16)
    codec = SLFAC(**options)
    encoded = codec.encode(x)
    budget_bits = 8 * codec.nbytes(encoded) / x.numel()
    quant = Quant(bits=max(1, math.ceil(budget_bits)))  # at least SL-FAC's bytes
    assert quant.nbytes(quant.encode(x)) >= codec.nbytes(encoded)
    mse = float((codec.decode(encoded) - x).square().mean())
    assert mse < float((quant.decode(quant.encode(x)) - x).square().mean())


# ------------------------------------------------------------------ check 11
def test_directions_are_independent_and_encoding_is_pure():
    up, down = get_codec("slfac:theta=0.9"), get_codec("slfac:theta=0.7,stochastic=true")
    acts, grads = randn(4, 3, 6, 6).relu(), randn(4, 3, 6, 6) * 1e-3
    first = down.encode(grads, CodecContext(3))
    up.encode(acts)
    again = down.encode(grads, CodecContext(3))
    for name in first.arrays:
        np.testing.assert_array_equal(first.arrays[name], again.arrays[name])
    assert up.get_config()["theta"] == 0.9 and down.get_config()["theta"] == 0.7
    other_seed = down.encode(grads, CodecContext(4))
    assert not np.array_equal(first.arrays["codes"], other_seed.arrays["codes"])


def test_gradients_are_signed_and_scale_free():
    grads = randn(8, 4, 8, 8) * 1e-4
    codec = SLFAC()
    decoded = codec.decode(codec.encode(grads))
    assert float((decoded - grads).norm() / grads.norm()) < 0.2
    assert bool((decoded < 0).any())


# ------------------------------------------------------------------ shapes
@pytest.mark.slow  # 60 hypothesis examples of 24-bit encodes
@settings(max_examples=60, deadline=None)
@given(
    shape=st.lists(st.integers(0, 7), min_size=0, max_size=5).map(tuple),
    seed=st.integers(0, 2**16),
)
def test_any_shape_round_trips_near_lossless_at_24_bits(shape, seed):
    codec = SLFAC(theta=1.0, bmin=24, bmax=24)
    x = randn(*shape, seed=seed)
    decoded = codec.decode(codec.encode(x))
    assert decoded.shape == x.shape
    torch.testing.assert_close(decoded, x, atol=1e-5, rtol=0)
