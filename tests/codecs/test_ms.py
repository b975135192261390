"""Tests for the mask-encoded sparsification codec: spec checks C1-C9 and their properties."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from flwr_split.codecs import CodecError, Encoded, get_codec
from flwr_split.codecs.ms import MaskSparsification
from tests.codecs.ms_cases import (
    BIG_SHAPE,
    FIG1,
    check_round_trip,
    mask_codes,
    nonneg_arrays,
    ratios,
    roundings,
    scopes,
    shapes,
    signed_arrays,
    topk_decoded,
    widths,
)

# --- C1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rounding", "codes", "error"),
    [
        ("nearest", [[3, 1, 2, 1], [2, 0, 3, 2], [3, 0, 2, 2], [0, 3, 2, 1]], 1.025),
        ("floor", [[3, 1, 1, 0], [2, 0, 3, 2], [3, 0, 1, 2], [0, 3, 2, 1]], 1.183),
    ],
)
def test_c1_figure_1_example(rounding, codes, error):
    x = torch.tensor(FIG1)
    codec = MaskSparsification(ratio=0.75, bits=2, rounding=rounding)  # k = 4 of 16
    encoded = codec.encode(x)
    assert encoded.meta["k"] == 4
    assert encoded.arrays["values"].tolist() == np.float32([2.2, 3.1, 2.1, 2.8]).tolist()
    assert encoded.arrays["values"].min() == np.float32(2.1)  # T, recovered by the decoder
    assert codec.nbytes(encoded) == 20 and 4 * x.numel() == 64
    np.testing.assert_array_equal(mask_codes(codec, encoded).reshape(4, 4), codes)
    # Wire layout §2.3 for b = 2: code 4q+t sits in bits 2t..2t+1 of byte q.
    mask = encoded.arrays["mask"]
    by_hand = [(int(mask[j // 4]) >> (2 * (j % 4))) & 3 for j in range(16)]
    assert by_hand == np.ravel(codes).tolist()
    decoded = codec.decode(encoded)
    assert float((decoded - x).norm()) == pytest.approx(error, abs=5e-4)
    assert float((topk_decoded(x, 0.75) - x).norm()) == pytest.approx(4.064, abs=5e-4)


# --- C2 / C3 on the big relu(N(0,1)) tensor, and C11 -------------------------------------


@pytest.fixture(scope="module")
def big_relu() -> torch.Tensor:
    return torch.relu(torch.randn(BIG_SHAPE, generator=torch.Generator().manual_seed(0)))


@pytest.fixture(scope="module")
def big_ms(big_relu) -> tuple[torch.Tensor, Encoded]:
    codec = MaskSparsification(ratio=0.99, bits=2)
    encoded = codec.encode(big_relu)
    return codec.decode(encoded), encoded


def test_c2_big_tensor_max_error_is_t_over_l(big_relu, big_ms):
    decoded, encoded = big_ms
    threshold = float(encoded.arrays["values"].min())
    max_error = float((decoded - big_relu).abs().max())
    assert max_error <= threshold / 3 * (1 + 1e-6)
    assert max_error == pytest.approx(threshold / 3, rel=1e-5)  # tight, to 5 digits
    levels = torch.tensor([0.0, threshold / 3, 2 * threshold / 3], dtype=torch.float32)
    kept = decoded >= threshold
    assert int(kept.sum()) == encoded.meta["k"] == math.floor(0.01 * big_relu.numel())
    assert torch.equal(decoded[kept], big_relu[kept])
    assert torch.isin(decoded[~kept], levels).all()


def test_c3_big_tensor_error_dominated_by_topk_elementwise(big_relu, big_ms):
    decoded, _ = big_ms
    topk_error = (topk_decoded(big_relu, 0.99) - big_relu).abs()
    assert bool(((decoded - big_relu).abs() <= topk_error).all())


def test_c11_error_regression_against_spec_numbers(big_relu, big_ms):
    """C11: relu(N(0,1)) (256,64,32,32); numbers from spec §6.4 and C11, ±1 %."""
    x = big_relu

    def l2(decoded: torch.Tensor) -> float:
        return float((decoded.double() - x.double()).norm())

    ms_32 = MaskSparsification(ratio=31 / 32, bits=2)
    assert l2(ms_32.decode(ms_32.encode(x))) == pytest.approx(582, rel=0.01)
    assert l2(topk_decoded(x, 25 / 32)) == pytest.approx(935, rel=0.01)
    assert l2(big_ms[0]) == pytest.approx(696, rel=0.01)
    assert l2(topk_decoded(x, 0.95875)) == pytest.approx(2263, rel=0.01)


# --- C2, C3 as properties ----------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(nonneg_arrays, ratios, widths, roundings, scopes)
@example(np.array(2.5, np.float32), 0.0, 2, "nearest", "batch")  # single element, k = 1
@example(np.array([7.0], np.float32), 0.5, 2, "nearest", "sample")  # single element, k = 0
@example(np.zeros((0,), np.float32), 0.3, 3, "floor", "batch")  # empty
@example(np.zeros((3, 0, 2), np.float32), 0.3, 3, "floor", "sample")  # empty samples
@example(np.zeros((4, 5), np.float32), 0.5, 2, "nearest", "batch")  # all zeros, T = 0
@example(np.full((2, 9), 1.5, np.float32), 0.5, 4, "nearest", "sample")  # all tied
def test_c2_c3_round_trip_matches_reference_and_bounds(x, ratio, bits, rounding, scope):
    """C2 (kept values exact, others on the T/L grid, error ≤ T/L), C3 (≤ top-k error)."""
    codec = MaskSparsification(ratio=ratio, bits=bits, rounding=rounding, scope=scope)
    check_round_trip(codec, x)


@settings(max_examples=80, deadline=None)
@given(signed_arrays, ratios, widths, roundings, scopes)
@example(np.array([-3.0, 1.0, -1.0, 0.5, -0.2, 0.0], np.float32), 0.5, 2, "nearest", "batch")
def test_signed_mode_round_trip(x, ratio, bits, rounding, scope):
    codec = MaskSparsification(ratio=ratio, bits=bits, rounding=rounding, scope=scope, signed=True)
    check_round_trip(codec, x)


def test_signed_mode_example_with_sign_bits():
    x = torch.tensor([-3.0, 1.0, -1.0, 0.5, -0.2, 0.0])
    codec = get_codec("ms:ratio=0.5,bits=2,signed=true")  # k = 3: -3, 1, -1; T = 1
    encoded = codec.encode(x)
    assert encoded.arrays["values"].tolist() == [-3.0, 1.0, -1.0]
    # 0.5 -> round(1.5) = 2; -0.2 -> round(0.6) = 1 with sign bit (4); 0 -> 0.
    assert mask_codes(codec, encoded).tolist() == [3, 3, 3, 2, 1 | 4, 0]
    assert codec.decode(encoded).tolist() == pytest.approx([-3.0, 1.0, -1.0, 2 / 3, -1 / 3, 0.0])


def test_unsigned_rejects_negative_input_and_points_to_signed():
    with pytest.raises(CodecError, match="signed=true"):
        get_codec("ms").encode(torch.tensor([1.0, -0.5, 2.0]))


def test_negative_zero_is_accepted_unsigned_and_round_trips_bit_exactly():
    x = torch.tensor([-0.0, 1.0, 0.0, 2.0])
    codec = MaskSparsification(ratio=0.0)
    decoded = codec.decode(codec.encode(x))
    assert decoded.numpy().tobytes() == x.numpy().tobytes()


# --- C4 -----------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(nonneg_arrays, ratios)
def test_c4_one_bit_mask_is_exactly_topk(x, ratio):
    tensor = torch.from_numpy(x)
    codec = MaskSparsification(ratio=ratio, bits=1)
    decoded = codec.decode(codec.encode(tensor))
    assert decoded.numpy().tobytes() == topk_decoded(tensor, ratio).numpy().tobytes()


@settings(max_examples=40, deadline=None)
@given(signed_arrays, ratios)
def test_c4_signed_one_bit_mask_is_exactly_topk_by_magnitude(x, ratio):
    tensor = torch.from_numpy(x)
    codec = MaskSparsification(ratio=ratio, bits=1, signed=True)
    decoded = codec.decode(codec.encode(tensor))
    np.testing.assert_array_equal(decoded.numpy(), topk_decoded(tensor, ratio).numpy())


# --- C5, C6 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec", ["ms:ratio=0", "ms:ratio=0,scope=sample", "ms:ratio=0,signed=true"]
)
@pytest.mark.parametrize("bits", [1, 2, 8])
def test_c5_ratio_zero_is_lossless_even_with_zeros(spec, bits):
    x = torch.relu(torch.randn(6, 4, 5, generator=torch.Generator().manual_seed(1)))
    x[0] = 0.0  # whole sample zero: T = 0 in sample scope
    codec = get_codec(f"{spec},bits={bits}")
    encoded = codec.encode(x)
    decoded = codec.decode(encoded)
    assert decoded.numpy().tobytes() == x.numpy().tobytes()
    assert (mask_codes(codec, encoded) == codec.levels).all()
    assert codec.nbytes(encoded) == 4 * x.numel() + math.ceil(codec.width * x.numel() / 8)


@pytest.mark.parametrize("scope", ["batch", "sample"])
@pytest.mark.parametrize("rounding", ["nearest", "floor"])
def test_c6_fewer_positive_entries_than_k_decodes_without_nan(scope, rounding):
    x = torch.zeros(2, 10)
    x[0, 3], x[1, 7] = 4.0, 0.5  # k = 5 per sample (10 for the batch): T = 0
    codec = MaskSparsification(ratio=0.5, bits=3, rounding=rounding, scope=scope)
    encoded = codec.encode(x)
    decoded = codec.decode(encoded)
    assert torch.isfinite(decoded).all()
    assert torch.equal(decoded, x)  # kept values exact, every non-top entry 0
    codes = mask_codes(codec, encoded)
    assert set(codes.tolist()) <= {0, codec.levels}
    assert encoded.arrays["values"].min() == 0.0


# --- C7 and the uplink ratio ------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(
    shapes,
    ratios,
    widths,
    scopes,
    st.booleans(),
)
def test_c7_nbytes_is_4k_plus_packed_mask(shape, ratio, bits, scope, signed):
    codec = MaskSparsification(ratio=ratio, bits=bits, scope=scope, signed=signed)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    encoded = codec.encode(x)
    n = x.numel()
    rows, width = codec.units(tuple(shape))
    kept = rows * codec.keep_count(width)
    assert encoded.arrays["values"].size == kept
    assert codec.nbytes(encoded) == 4 * kept + math.ceil((bits + signed) * n / 8)
    if scope == "batch" and not signed:
        k = math.floor((1 - Fraction(repr(ratio))) * n)  # exact floor((1 - r) n)
        assert codec.nbytes(encoded) == 4 * k + math.ceil(bits * n / 8)


def test_c7_vgg19_shallow_batch_256_is_1216348_bytes():
    x = torch.relu(torch.randn(256, 64, 16, 16, generator=torch.Generator().manual_seed(2)))
    codec = get_codec("ms:ratio=0.99,bits=2")
    encoded = codec.encode(x)
    assert encoded.meta["k"] == 41_943
    assert codec.nbytes(encoded) == 1_216_348
    assert 4 * x.numel() / codec.nbytes(encoded) == pytest.approx(13.793, abs=5e-4)


@pytest.mark.parametrize(
    "per_sample", [(64, 16, 16), (256, 4, 4), (512, 2, 2), (64, 32, 32), (128, 16, 16),
                   (256, 8, 8), (64, 56, 56), (128, 28, 28), (256, 14, 14)],
)  # fmt: skip
def test_c7_compression_ratio_is_13_79_on_every_paper_cut(per_sample):
    """C7: CR = 32n / (32k + bn) at B = 256 for every cut of spec §3.2 (arithmetic only)."""
    codec = MaskSparsification(ratio=0.99, bits=2)
    n = 256 * math.prod(per_sample)
    cr = 32 * n / (32 * codec.keep_count(n) + 2 * n)
    assert round(cr, 2) == 13.79


@pytest.mark.parametrize("shape", [(128, 32, 40), (256, 64, 16, 16)])
def test_uplink_ratio_vs_fp32_is_13_79_for_realistic_activations(shape):
    """The paper's 13.79x is 32 / (32 (1 - r) + b) = 32 / 2.32 bits per element (spec §3.2).

    Measured 4n / nbytes is slightly above it (k is floored) and rounds to 13.79 for
    activations of realistic size; e.g. (16, 16, 8, 8) gives 65536 / 4748 = 13.80.
    """
    gen = torch.Generator().manual_seed(3)
    channels = shape[1]
    conv = nn.Conv1d(channels, channels, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / math.sqrt(3 * channels))
        inputs = torch.randn(shape[0], channels, math.prod(shape[2:]), generator=gen)
        acts = torch.relu(conv(inputs)).reshape(shape)
    codec = get_codec("ms:ratio=0.99,bits=2")
    encoded = codec.encode(acts)
    ratio = 4 * acts.numel() / codec.nbytes(encoded)
    paper = 32 / (32 * (1 - 0.99) + 2)
    assert paper == pytest.approx(13.7931, abs=1e-4)
    assert paper <= ratio < paper * 1.001
    assert round(ratio, 2) == 13.79


# --- C8, C9 -------------------------------------------------------------------------------


def test_c8_values_are_in_ascending_flat_index_order_and_order_matters():
    x = torch.relu(torch.randn(4, 50, generator=torch.Generator().manual_seed(4)))
    codec = MaskSparsification(ratio=0.9, bits=2)  # k = 20
    encoded = codec.encode(x)
    top = mask_codes(codec, encoded) == codec.levels
    np.testing.assert_array_equal(encoded.arrays["values"], x.numpy().reshape(-1)[top])
    for permute in (np.sort, lambda v: np.sort(v)[::-1].copy(), lambda v: np.roll(v, 1)):
        encoded.arrays["values"] = permute(encoded.arrays["values"].copy())
        decoded = codec.decode(encoded).reshape(-1)
        assert not torch.equal(decoded[torch.from_numpy(top)], x.reshape(-1)[top])


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_c9_ties_at_the_threshold_mark_exactly_k_positions(bits):
    x = torch.tensor([0.0, 1.0, 5.0, 1.0, 1.0, 0.2, 1.0, 1.0, 6.0, 1.0])
    codec = MaskSparsification(ratio=0.6, bits=bits)  # k = 4: 5, 6 and the first two 1.0s
    encoded = codec.encode(x)
    levels = codec.levels
    codes = mask_codes(codec, encoded)
    assert np.count_nonzero(codes == levels) == 4 == encoded.arrays["values"].size
    assert np.flatnonzero(codes == levels).tolist() == [1, 2, 3, 8]
    decoded = codec.decode(encoded)
    assert decoded[[1, 2, 3, 8]].tolist() == [1.0, 5.0, 1.0, 6.0]
    # Unselected ties equal to T = 1 decode to T (L - 1) / L.
    expected = np.float32((levels - 1) / levels)
    assert decoded[[4, 6, 7, 9]].tolist() == [expected] * 4
