"""SL-FAC: bad options and payloads, and the component-by-component reference payload."""

import numpy as np
import pytest
import torch

from flwr_split.codecs import CodecContext, CodecError, dct
from flwr_split.codecs.bitpack import pack_bits
from flwr_split.codecs.dct import (
    band_layout,
    dct2_bands,
    idct2_bands,
)
from flwr_split.codecs.minmax import dequantize
from flwr_split.codecs.slfac import SLFAC, planes_shape
from tests.codecs.slfac_cases import (
    band_energy,
    randn,
    wire_stream,
)


# ------------------------------------------------------------------ options and bad payloads
@pytest.mark.parametrize(
    "options",
    [
        {"theta": 0.0},
        {"theta": 1.5},
        {"theta": True},
        {"bmin": 0},
        {"bmax": 25},
        {"bmin": 5, "bmax": 4},
        {"alloc": "greedy"},
        {"mean_bits": 25.0},
        {"cutoff_scope": "sample"},
        {"hf_drop": 1},
        {"stochastic": "yes"},
        {"passthrough": None},
    ],
)
def test_bad_options_raise(options):
    with pytest.raises(CodecError):
        SLFAC(**options)


def _payload(codec: SLFAC | None = None):
    codec = codec or SLFAC()
    return codec, codec.encode(randn(4, 3, 6, 6))


@pytest.mark.parametrize(
    ("name", "change", "reason"),
    [
        ("cutoffs", lambda a: np.full_like(a, 11), "out of range"),
        ("bits", lambda a: np.where(np.arange(a.size) == 0, 9, a).astype(np.uint8), "outside"),
        ("bits", lambda a: np.where(np.arange(a.size) == 0, 1, a).astype(np.uint8), "outside"),
        ("ranges", lambda a: np.where(np.arange(a.size) == 0, np.nan, a).astype(a.dtype), "NaN"),
        ("ranges", lambda a: a.reshape(-1, 2)[:, ::-1].reshape(-1).copy(), "min > max"),
        ("codes", lambda a: a[:-1], "elements"),
        ("codes", lambda a: a.astype(np.int8), "dtype"),
        ("cutoffs", lambda a: a.astype(np.int32), "dtype"),
    ],
)
def test_decode_rejects_bad_payloads_with_a_reason(name, change, reason):
    codec, encoded = _payload()
    encoded.arrays[name] = change(encoded.arrays[name])
    with pytest.raises(CodecError, match=reason):
        codec.decode(encoded)


def test_decode_rejects_set_padding_bits():
    codec = SLFAC(bmin=3, bmax=3)
    encoded = codec.encode(randn(1, 1, 1, 5))  # 5 codes of 3 bits: one padding bit
    encoded.arrays["codes"] = encoded.arrays["codes"] | np.uint8(0x80)
    with pytest.raises(CodecError, match="padding"):
        codec.decode(encoded)


def test_decode_rejects_non_zero_bits_on_a_dropped_high_component():
    codec, encoded = _payload(SLFAC(hf_drop=True))
    bits = encoded.arrays["bits"].copy()
    assert bits[1] == 0
    bits[1] = 2
    encoded.arrays["bits"] = bits
    with pytest.raises(CodecError, match="dropped"):
        codec.decode(encoded)


def test_decode_rejects_a_payload_of_another_cutoff_scope():
    _, encoded = _payload(SLFAC(cutoff_scope="tensor"))
    with pytest.raises(CodecError, match="cutoffs"):
        SLFAC().decode(encoded)


def test_coefficients_that_overflow_float32_are_refused():
    with pytest.raises(CodecError, match="overflow"):
        SLFAC().encode(torch.full((1, 1, 4, 4), 3e38))


def test_too_long_axes_are_refused():
    with pytest.raises(CodecError, match="at most"):
        SLFAC().encode(torch.zeros(1, 5000))


# ------------------------------------------------------------------ reference
def quantize(
    values: torch.Tensor, lo: float, hi: float, levels: float, noise: torch.Tensor | None
) -> torch.Tensor:
    """Codes ``round((v - lo) / step)`` (or ``floor(... + noise)``) in float64, clamped."""
    if hi == lo:
        return torch.zeros(values.shape, dtype=torch.int64)
    scaled = (values.double() - lo) / ((hi - lo) / levels)
    rounded = scaled.round() if noise is None else (scaled + noise).floor()
    return rounded.clamp(0, levels).to(torch.int64)


def _reference_payload(codec: SLFAC, x: torch.Tensor, seed: int) -> dict[str, np.ndarray]:
    """The payload built component by component (how slfac worked before it was vectorized)."""
    batch, channels, height, width = planes_shape(tuple(x.shape))
    energy = band_energy(x.reshape(batch, channels, height, width))
    if codec.cutoff_scope == "tensor":
        energy = energy.sum(0, keepdim=True)
    cumulative = torch.cumsum(energy, 1)
    below = cumulative < codec.theta * cumulative[:, -1:]
    cutoffs = below.sum(1).clamp(max=height + width - 2)
    stream, component = wire_stream(x, cutoffs)
    counts = torch.bincount(component, minlength=2 * channels)
    squares = torch.zeros(2 * channels, dtype=torch.float64)
    energy = squares.index_add_(0, component, stream.square())
    bits = torch.from_numpy(codec._allocate(energy.numpy(), counts.numpy()))
    noise = torch.rand(
        int(counts[bits > 0].sum()), generator=CodecContext(seed).generator(), dtype=torch.float64
    )
    ranges, packed = [], []
    for g in torch.nonzero(bits).flatten().tolist():
        values, width_g = stream[component == g], int(bits[g])
        lo, hi = float(values.min()), float(values.max())
        draws, noise = noise[: values.numel()], noise[values.numel() :]
        codes = quantize(values, lo, hi, 2.0**width_g - 1, draws if codec.stochastic else None)
        ranges += [lo, hi]
        packed.append(pack_bits(codes.numpy(), width_g))
    return {
        "cutoffs": cutoffs.numpy().astype(np.uint16),
        "bits": bits[counts > 0].numpy().astype(np.uint8),
        "ranges": np.array(ranges, dtype=np.float32),
        "codes": np.concatenate([np.zeros(0, np.uint8), *packed]),
    }


def _reference_decode(codec: SLFAC, x: torch.Tensor, seed: int) -> torch.Tensor:
    """Dequantize the reference payload channel by channel; inverse DCT of band-ordered planes."""
    batch, channels, height, width = planes_shape(tuple(x.shape))
    quantized = codec.quantize(x, CodecContext(seed))
    stream, component = wire_stream(x, quantized.cutoffs)
    levels = (2.0**quantized.bits - 1).clamp(min=1)[component]
    sent = quantized.bits[component] > 0
    values = torch.zeros_like(stream)
    values[sent] = dequantize(
        quantized.codes, quantized.lo[component][sent], quantized.hi[component][sent], levels[sent]
    )
    prefix = band_layout(height, width)[2]
    low = prefix[quantized.cutoffs].expand(channels).tolist()
    coeffs = torch.zeros(channels, batch, height * width)
    for c, block in enumerate(values.float().split(batch * height * width)):
        low_part, high_part = block.split([batch * low[c], batch * (height * width - low[c])])
        coeffs[c] = torch.cat([low_part.reshape(batch, low[c]), high_part.reshape(batch, -1)], 1)
    return idct2_bands(coeffs.transpose(0, 1).contiguous(), height, width).reshape(x.shape)


@pytest.mark.parametrize(
    ("options", "shape"),
    [
        ({}, (16, 6, 8, 8)),
        ({"stochastic": True}, (5, 3, 6, 7)),
        ({"hf_drop": True, "theta": 0.7}, (8, 4, 4, 4)),
        ({"cutoff_scope": "tensor", "alloc": "two_level"}, (3, 5, 5, 5)),
        ({"alloc": "rd_log", "bmin": 3, "bmax": 12, "mean_bits": 5.5}, (7, 4, 3, 9)),
        ({}, (9, 8, 40)),
        ({"theta": 0.99, "stochastic": True}, (6, 20)),
    ],
)
def test_payload_and_decoding_match_the_component_by_component_reference(options, shape):
    codec = SLFAC(**options)
    x = randn(*shape, seed=11).relu() + 0.1 * randn(*shape, seed=12)
    encoded = codec.encode(x, CodecContext(5))
    reference = _reference_payload(codec, x, 5)
    assert encoded.arrays.keys() == reference.keys()
    for name, array in reference.items():
        assert encoded.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(encoded.arrays[name], array, err_msg=name)
    assert torch.equal(codec.decode(encoded), _reference_decode(codec, x, 5))


def test_decoded_values_that_overflow_float32_are_refused():
    codec, encoded = _payload()
    huge = np.float32([-dct.FLOAT32_MAX, dct.FLOAT32_MAX])
    encoded.arrays["ranges"] = np.tile(huge, encoded.arrays["ranges"].size // 2)
    with pytest.raises(CodecError, match="decoded values overflow"):
        codec.decode(encoded)


@pytest.mark.parametrize("plane", [(6, 6), (32, 32), (1, 300)])
def test_inverse_dct_stays_finite_below_the_bound_that_skips_the_scan(plane):
    """`dct.finite_planes` skips its scan when ``2 max|coefficient| sqrt(H W)`` < float32 max.

    Coefficients at that bound, signed like a basis function, give the largest output.
    """
    height, width = plane
    largest = np.nextafter(np.float32(dct.FLOAT32_MAX / (2 * (height * width) ** 0.5)), 0)
    delta = torch.zeros(1, height, width)
    delta[0, 0, 0] = 1
    basis = dct2_bands(delta)  # every basis function's value at position 0
    out = idct2_bands(largest * torch.sign(basis), height, width)
    assert out[0, 0, 0] > 0.5 * largest * (height * width) ** 0.5  # near the bound
    assert torch.isfinite(out).all()
    lo = np.float64([-largest])
    assert dct.finite_planes(out, lo, -lo, height * width) is out
