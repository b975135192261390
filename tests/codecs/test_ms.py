"""Tests for the mask-encoded sparsification codec (spec checks C1-C12 plus properties)."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from torch import nn

from flwr_split.codecs import CodecError, Encoded, get_codec
from flwr_split.codecs.bitpack import index_bits, pack_bits, packed_nbytes, unpack_bits
from flwr_split.codecs.ms import ROUNDINGS, MaskSparsification
from flwr_split.codecs.topk import TopK

FIG1 = [[2.2, 0.8, 1.2, 0.4], [1.8, 0.2, 3.1, 2.0], [2.1, 0.2, 1.1, 1.7], [0.3, 2.8, 1.4, 0.9]]
BIG_SHAPE = (256, 64, 32, 32)  # spec §6.4 / C2 / C11

shapes = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6)
# Few distinct values (ties and zeros are common) or arbitrary ones.
tied = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0])
nonneg_arrays = hnp.arrays(
    np.float32, shapes, elements=st.one_of(tied, st.floats(0, 1e4, width=32))
)
signed_arrays = hnp.arrays(
    np.float32,
    shapes,
    elements=st.one_of(
        st.sampled_from([0.0, -1.0, 1.0, 2.0, -2.0]), st.floats(-1e4, 1e4, width=32)
    ),
)
ratios = st.floats(0.0, 1.0, exclude_max=True)
widths = st.integers(1, 8)
roundings = st.sampled_from(["nearest", "floor"])
scopes = st.sampled_from(["batch", "sample"])


def _codes(codec: MaskSparsification, encoded: Encoded) -> np.ndarray:
    """The unpacked mask codes (with the sign bit, if any) in flat order."""
    numel = math.prod(encoded.meta["shape"])
    return unpack_bits(encoded.arrays["mask"], codec.width, numel)


def _units(codec: MaskSparsification, x: np.ndarray) -> np.ndarray:
    rows, width = codec.units(x.shape)
    return x.reshape(rows, width)


def _reference(v: np.ndarray, k: int, bits: int, rounding: str) -> tuple[np.ndarray, np.ndarray]:
    """Straightforward MS of one unit ``v`` (1-D): return (magnitude codes, kept values).

    Selection by a stable sort of ``-|v|`` (ties to lower positions), independent
    of the codec's partition-based selection.
    """
    levels = 2**bits - 1
    mag = np.abs(v).astype(np.float64)
    order = np.argsort(-mag, kind="stable")[:k]
    top = np.zeros(v.size, dtype=bool)
    top[order] = True
    threshold = mag[top].min() if k else 0.0
    if threshold > 0:
        scaled = mag * levels / threshold
        q = np.rint(scaled) if rounding == "nearest" else np.floor(scaled)
        codes = np.minimum(q, levels - 1).astype(np.int64)
    else:
        codes = np.zeros(v.size, dtype=np.int64)
    codes[top] = levels
    return codes, v[top]


def _topk_decode(x: torch.Tensor, ratio: float) -> torch.Tensor:
    codec = TopK(ratio=ratio)
    return codec.decode(codec.encode(x))


def _check_round_trip(codec: MaskSparsification, x: np.ndarray) -> None:
    """Exact comparison with `_reference`, per unit, plus the error bound of C2/C3."""
    encoded = codec.encode(torch.from_numpy(x))
    decoded = codec.decode(encoded).numpy()
    assert decoded.shape == x.shape and decoded.dtype == np.float32
    levels = codec.levels
    codes = _units(codec, _codes(codec, encoded).reshape(x.shape))
    magnitude, sign = codes & levels, codes >> codec.bits
    units, out = _units(codec, x), _units(codec, decoded)
    k = encoded.meta["k"]
    kept_all = []
    for row in range(units.shape[0]):  # test-side reference only; the codec is vectorized
        ref_codes, ref_kept = _reference(units[row], k, codec.bits, codec.rounding)
        np.testing.assert_array_equal(magnitude[row], ref_codes)
        kept_all.append(ref_kept)
        top = ref_codes == levels
        # Kept values come back bit-exactly.
        assert out[row][top].tobytes() == units[row][top].tobytes()
        threshold = float(np.abs(ref_kept).min()) if k else 0.0
        expected = (magnitude[row] * threshold / levels).astype(np.float32)
        expected = np.where(sign[row] == 1, -expected, expected)
        np.testing.assert_array_equal(out[row][~top], expected[~top])
        # C2 bound: within T/L; C3: never farther than top-k (|v|).
        error = np.abs(out[row].astype(np.float64) - units[row])
        if k:  # with k = 0 everything decodes to 0, like top-k
            slack = threshold * 2**-23 + 2**-149  # one float32 rounding of a level
            assert np.all(error <= threshold / levels + slack)
        assert np.all(error <= np.abs(units[row]))
        if codec.signed:
            assert np.all(np.sign(out[row]) * np.sign(units[row]) >= 0)
    np.testing.assert_array_equal(encoded.arrays["values"], np.concatenate([[], *kept_all]))


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
    np.testing.assert_array_equal(_codes(codec, encoded).reshape(4, 4), codes)
    # Wire layout §2.3 for b = 2: code 4q+t sits in bits 2t..2t+1 of byte q.
    mask = encoded.arrays["mask"]
    by_hand = [(int(mask[j // 4]) >> (2 * (j % 4))) & 3 for j in range(16)]
    assert by_hand == np.ravel(codes).tolist()
    decoded = codec.decode(encoded)
    assert float((decoded - x).norm()) == pytest.approx(error, abs=5e-4)
    assert float((_topk_decode(x, 0.75) - x).norm()) == pytest.approx(4.064, abs=5e-4)


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
    topk_error = (_topk_decode(big_relu, 0.99) - big_relu).abs()
    assert bool(((decoded - big_relu).abs() <= topk_error).all())


def test_c11_error_regression_against_spec_numbers(big_relu, big_ms):
    """C11: relu(N(0,1)) (256,64,32,32); numbers from spec §6.4 and C11, ±1 %."""
    x = big_relu

    def l2(decoded: torch.Tensor) -> float:
        return float((decoded.double() - x.double()).norm())

    ms_32 = MaskSparsification(ratio=31 / 32, bits=2)
    assert l2(ms_32.decode(ms_32.encode(x))) == pytest.approx(582, rel=0.01)
    assert l2(_topk_decode(x, 25 / 32)) == pytest.approx(935, rel=0.01)
    assert l2(big_ms[0]) == pytest.approx(696, rel=0.01)
    assert l2(_topk_decode(x, 0.95875)) == pytest.approx(2263, rel=0.01)


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
    _check_round_trip(codec, x)


@settings(max_examples=80, deadline=None)
@given(signed_arrays, ratios, widths, roundings, scopes)
@example(np.array([-3.0, 1.0, -1.0, 0.5, -0.2, 0.0], np.float32), 0.5, 2, "nearest", "batch")
def test_signed_mode_round_trip(x, ratio, bits, rounding, scope):
    codec = MaskSparsification(ratio=ratio, bits=bits, rounding=rounding, scope=scope, signed=True)
    _check_round_trip(codec, x)


def test_signed_mode_example_with_sign_bits():
    x = torch.tensor([-3.0, 1.0, -1.0, 0.5, -0.2, 0.0])
    codec = get_codec("ms:ratio=0.5,bits=2,signed=true")  # k = 3: -3, 1, -1; T = 1
    encoded = codec.encode(x)
    assert encoded.arrays["values"].tolist() == [-3.0, 1.0, -1.0]
    # 0.5 -> round(1.5) = 2; -0.2 -> round(0.6) = 1 with sign bit (4); 0 -> 0.
    assert _codes(codec, encoded).tolist() == [3, 3, 3, 2, 1 | 4, 0]
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
    assert decoded.numpy().tobytes() == _topk_decode(tensor, ratio).numpy().tobytes()


@settings(max_examples=40, deadline=None)
@given(signed_arrays, ratios)
def test_c4_signed_one_bit_mask_is_exactly_topk_by_magnitude(x, ratio):
    tensor = torch.from_numpy(x)
    codec = MaskSparsification(ratio=ratio, bits=1, signed=True)
    decoded = codec.decode(codec.encode(tensor))
    np.testing.assert_array_equal(decoded.numpy(), _topk_decode(tensor, ratio).numpy())


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
    assert (_codes(codec, encoded) == codec.levels).all()
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
    codes = _codes(codec, encoded)
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
    top = _codes(codec, encoded) == codec.levels
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
    codes = _codes(codec, encoded)
    assert np.count_nonzero(codes == levels) == 4 == encoded.arrays["values"].size
    assert np.flatnonzero(codes == levels).tolist() == [1, 2, 3, 8]
    decoded = codec.decode(encoded)
    assert decoded[[1, 2, 3, 8]].tolist() == [1.0, 5.0, 1.0, 6.0]
    # Unselected ties equal to T = 1 decode to T (L - 1) / L.
    expected = np.float32((levels - 1) / levels)
    assert decoded[[4, 6, 7, 9]].tolist() == [expected] * 4


# --- C10 ----------------------------------------------------------------------------------


def _split_step(client: nn.Module, server: nn.Module, x, y, codec) -> list[torch.Tensor]:
    """One split step with straight-through compression; return all parameter gradients."""
    client.zero_grad()
    server.zero_grad()
    z = client(x)
    z_hat = z.detach() if codec is None else codec.decode(codec.encode(z.detach()))
    z_hat.requires_grad_(True)
    F.cross_entropy(server(z_hat), y).backward()
    z.backward(z_hat.grad)
    return [p.grad.clone() for p in (*client.parameters(), *server.parameters())]


def _small_cnn(seed: int, channels: int = 4) -> tuple[nn.Module, nn.Module]:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        client = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU())
        server = nn.Sequential(
            nn.Conv2d(channels, 8, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(8, 5),
        )
    return client, server


def test_c10_client_gradient_is_jacobian_transpose_times_cut_gradient():
    client, server = _small_cnn(0)
    gen = torch.Generator().manual_seed(5)
    x, y = torch.randn(4, 3, 6, 6, generator=gen), torch.randint(0, 5, (4,), generator=gen)
    codec = MaskSparsification(ratio=0.9, bits=2)
    z = client(x).detach()
    z_hat = codec.decode(codec.encode(z)).requires_grad_(True)
    F.cross_entropy(server(z_hat), y).backward()
    cut_grad = z_hat.grad.reshape(-1)
    grads = _split_step(client, server, x, y, codec)[:2]
    params = dict(client.named_parameters())
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(client, p, (x,)))(params)
    for (name, p), grad in zip(params.items(), grads, strict=True):
        jt_g = jac[name].reshape(z.numel(), p.numel()).T @ cut_grad
        torch.testing.assert_close(grad.reshape(-1), jt_g, rtol=1e-5, atol=1e-6)


def test_c10_lossless_split_gradients_equal_the_unsplit_model():
    client, server = _small_cnn(1)
    gen = torch.Generator().manual_seed(6)
    x, y = torch.randn(8, 3, 6, 6, generator=gen), torch.randint(0, 5, (8,), generator=gen)
    split = _split_step(client, server, x, y, MaskSparsification(ratio=0.0, bits=2))
    whole = nn.Sequential(client, server)
    whole.zero_grad()
    F.cross_entropy(whole(x), y).backward()
    for got, p in zip(split, whole.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-6, atol=1e-7)


# --- C12 ----------------------------------------------------------------------------------


def test_c12_unbiased_rand_k_gives_biased_server_output():
    """C12 (Theorem 1): E[rand-k(z)] = z, but E[ReLU(W rand-k(z))] != ReLU(W z)."""
    gen = torch.Generator().manual_seed(7)
    d, k, draws = 64, 8, 20_000
    z = torch.relu(torch.randn(d, generator=gen, dtype=torch.float64))
    weight = torch.randn(16, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    picks = torch.rand(draws, d, generator=gen).argsort(dim=1)[:, :k]
    mask = torch.zeros(draws, d, dtype=torch.float64).scatter_(1, picks, 1.0)
    z_hat = mask * z * (d / k)
    # The compressor is unbiased (within 5 standard errors per entry) ...
    se = z_hat.std(dim=0) / math.sqrt(draws)
    assert bool(((z_hat.mean(dim=0) - z).abs() <= 5 * se + 1e-12).all())
    # ... but the server output after a ReLU is not.
    out = torch.relu(z_hat @ weight.T)
    bias = out.mean(dim=0) - torch.relu(weight @ z)
    out_se = out.std(dim=0) / math.sqrt(draws)
    assert float(bias.norm()) > 20 * float(out_se.norm())
    assert bool((bias >= -5 * out_se).all())  # Jensen: ReLU is convex


def test_c12_ms_gradient_error_is_below_topk_at_equal_wire_size():
    """C12: mean ||g_hat - g|| over 20 batches, MS(0.99, 2) < top-k with as many bytes."""
    client, server = _small_cnn(2, channels=16)
    gen = torch.Generator().manual_seed(8)
    ms = MaskSparsification(ratio=0.99, bits=2)
    probe = torch.rand(16, 16, 16, 16)
    budget = ms.nbytes(ms.encode(probe))
    # Top-k keeps as many values as fit in the same bytes (in its cheaper index format).
    n = probe.numel()
    index_bytes = min(packed_nbytes(index_bits(n), n // 10), packed_nbytes(1, n))
    keep = max(
        k
        for k in range(n // 10)
        if 4 * k + min(index_bytes, (k * index_bits(n) + 7) // 8) <= budget
    )
    topk = TopK(ratio=1 - keep / n)
    assert 0.99 * budget <= topk.nbytes(topk.encode(probe)) <= budget
    assert topk.keep_count(n) >= math.floor((1 - 0.95875) * n)  # at least the paper's SP
    errors = {"ms": [], "topk": []}
    for _ in range(20):
        x = torch.randn(16, 3, 16, 16, generator=gen)
        y = torch.randint(0, 5, (16,), generator=gen)
        exact = torch.cat([g.reshape(-1) for g in _split_step(client, server, x, y, None)])
        for name, codec in (("ms", ms), ("topk", topk)):
            grads = torch.cat([g.reshape(-1) for g in _split_step(client, server, x, y, codec)])
            errors[name].append(float((grads - exact).norm()))
    assert np.mean(errors["ms"]) < np.mean(errors["topk"])
    assert sum(m < t for m, t in zip(errors["ms"], errors["topk"], strict=True)) >= 15


# --- Options, config, malformed payloads --------------------------------------------------


def test_spec_string_builds_the_codec():
    codec = get_codec("ms:ratio=0.99,bits=2")
    assert isinstance(codec, MaskSparsification)
    assert codec.get_config() == {
        "id": "ms",
        "ratio": 0.99,
        "bits": 2,
        "rounding": "nearest",
        "scope": "batch",
        "signed": False,
    }
    other = get_codec("ms:ratio=0.5,bits=3,rounding=floor,scope=sample,signed=true")
    assert (other.rounding, other.scope, other.signed, other.width) == ("floor", "sample", True, 4)
    assert other.accepts_negative and not codec.accepts_negative


@pytest.mark.parametrize(
    "options",
    [
        {"ratio": 1.0},
        {"ratio": -0.1},
        {"ratio": float("nan")},
        {"ratio": "0.5"},
        {"ratio": True},
        {"bits": 0},
        {"bits": 9},
        {"bits": 2.0},
        {"bits": True},
        {"rounding": "stochastic"},
        {"scope": "channel"},
        {"signed": 1},
        {"signed": "true"},
    ],
)
def test_constructor_rejects_bad_options(options):
    with pytest.raises(CodecError, match=next(iter(options))):
        MaskSparsification(**options)


def test_scope_sample_equals_batch_scope_applied_to_each_sample():
    x = torch.relu(torch.randn(5, 3, 7, generator=torch.Generator().manual_seed(9)))
    x[2] = 0.0
    per_sample = MaskSparsification(ratio=0.8, bits=3, scope="sample")
    per_batch = MaskSparsification(ratio=0.8, bits=3)
    encoded = per_sample.encode(x)
    assert encoded.meta["k"] == 4  # floor(0.2 * 21) per sample
    decoded = per_sample.decode(encoded)
    for i in range(x.shape[0]):
        assert torch.equal(decoded[i], per_batch.decode(per_batch.encode(x[i])))
    assert per_sample.nbytes(encoded) == 4 * 5 * 4 + math.ceil(3 * x.numel() / 8)


def _payload(**options) -> tuple[MaskSparsification, Encoded]:
    codec = MaskSparsification(**{"ratio": 0.75, "bits": 2, **options})
    return codec, codec.encode(torch.tensor(FIG1) * (-1 if options.get("signed") else 1))


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["values", "mask"]),
    st.integers(-4, 4).filter(bool),
    st.booleans(),
    scopes,
)
def test_decode_rejects_arrays_of_the_wrong_length(name, delta, signed, scope):
    codec, encoded = _payload(signed=signed, scope=scope)
    array = encoded.arrays[name]
    encoded.arrays[name] = np.resize(array, max(array.size + delta, 0))
    with pytest.raises(CodecError, match=f"'{name}'"):
        codec.decode(encoded)


@settings(max_examples=60, deadline=None)
@given(st.data(), st.booleans())
def test_decode_rejects_mask_whose_all_ones_count_differs_from_values(data, signed):
    codec, encoded = _payload(signed=signed)
    codes = _codes(codec, encoded)
    top = np.flatnonzero(codes == codec.levels)
    rest = np.flatnonzero(codes != codec.levels)
    if data.draw(st.booleans(), label="drop a kept code"):
        codes[data.draw(st.sampled_from(top.tolist()))] = data.draw(
            st.integers(0, codec.levels - 1)
        )
    else:
        codes[data.draw(st.sampled_from(rest.tolist()))] = codec.levels
    encoded.arrays["mask"] = pack_bits(codes, codec.width)
    with pytest.raises(CodecError, match="all-ones codes"):
        codec.decode(encoded)


def test_decode_rejects_mask_with_nonzero_padding_bits():
    codec = MaskSparsification(ratio=0.5, bits=3)
    encoded = codec.encode(torch.arange(5.0))  # 15 bits: one padding bit
    encoded.arrays["mask"][-1] |= 0x80
    with pytest.raises(CodecError, match="padding"):
        codec.decode(encoded)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("bits", 3, "3-bit mask"),
        ("bits", 2.0, "bits"),
        ("bits", None, "bits"),
        ("k", 3, "k=3"),
        ("k", 5, "k=5"),
        ("k", "4", "k"),
        ("k", True, "k"),
        ("scope", "sample", "scope"),
        ("scope", None, "scope"),
        ("signed", True, "signed"),
        ("signed", 0, "signed"),
    ],
)
def test_decode_rejects_meta_that_disagrees_with_the_codec(key, value, match):
    codec, encoded = _payload()
    if value is None:
        del encoded.meta[key]
    else:
        encoded.meta[key] = value
    with pytest.raises(CodecError, match=match):
        codec.decode(encoded)


def test_decode_rejects_payload_from_a_codec_with_another_ratio():
    _, encoded = _payload()
    with pytest.raises(CodecError, match="ratio"):
        MaskSparsification(ratio=0.5, bits=2).decode(encoded)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_decode_rejects_non_finite_values(bad):
    codec, encoded = _payload()
    encoded.arrays["values"][1] = bad
    with pytest.raises(CodecError, match="NaN or inf"):
        codec.decode(encoded)


def test_decode_rejects_negative_values_in_an_unsigned_payload():
    codec, encoded = _payload()
    encoded.arrays["values"][0] = -2.2
    with pytest.raises(CodecError, match="negative"):
        codec.decode(encoded)


@pytest.mark.parametrize(("name", "dtype"), [("values", np.float64), ("mask", np.int8)])
def test_decode_rejects_wrong_dtypes(name, dtype):
    codec, encoded = _payload()
    encoded.arrays[name] = encoded.arrays[name].astype(dtype)
    with pytest.raises(CodecError, match="dtype"):
        codec.decode(encoded)


@pytest.mark.parametrize("name", ["values", "mask"])
def test_decode_rejects_a_missing_array(name):
    codec, encoded = _payload()
    del encoded.arrays[name]
    with pytest.raises(CodecError, match=f"missing array '{name}'"):
        codec.decode(encoded)


def test_decode_rejects_nonzero_codes_when_the_smallest_kept_value_is_zero():
    codec = MaskSparsification(ratio=0.5, bits=2)
    encoded = codec.encode(torch.tensor([0.0, 0.0, 3.0, 0.0]))  # k = 2, T = 0
    codes = _codes(codec, encoded)
    codes[codes != codec.levels] = 1
    encoded.arrays["mask"] = pack_bits(codes, codec.width)
    with pytest.raises(CodecError, match="smallest kept value is 0"):
        codec.decode(encoded)


@pytest.mark.parametrize("where", ["kept", "zero"])
def test_decode_rejects_misplaced_sign_bits(where):
    codec, encoded = _payload(signed=True)
    codes = _codes(codec, encoded)
    target = codes == codec.levels if where == "kept" else codes == 0
    codes[np.flatnonzero(target)[0]] |= 1 << codec.bits
    encoded.arrays["mask"] = pack_bits(codes, codec.width)
    with pytest.raises(CodecError, match="sign bit"):
        codec.decode(encoded)


def test_encoding_is_deterministic():
    x = torch.relu(torch.randn(32, 40, generator=torch.Generator().manual_seed(10)))
    codec = MaskSparsification(ratio=0.9, bits=3, scope="sample")
    first, again = codec.encode(x), codec.encode(x.clone())
    assert first.meta == again.meta
    for name in first.arrays:
        assert first.arrays[name].tobytes() == again.arrays[name].tobytes()


@pytest.mark.parametrize("scope", ["batch", "sample"])
def test_empty_tensor_with_a_huge_axis_round_trips_without_allocating(scope):
    codec = MaskSparsification(scope=scope)
    encoded = codec.encode(torch.empty(10**12, 0))
    assert codec.nbytes(encoded) == 0
    assert codec.decode(encoded).shape == (10**12, 0)
    encoded.meta["shape"] = [2**64, 0]
    with pytest.raises(CodecError, match="dimension above"):
        codec.decode(encoded)


@pytest.mark.parametrize("rounding", ["nearest", "floor"])
@pytest.mark.parametrize("bits", [2, 3])
def test_level_edges_are_the_exact_float32_boundaries_of_the_float64_codes(bits, rounding):
    """Codes counted from edges equal the float64 rule ``Q(v L / T)`` at every float32."""
    codec = MaskSparsification(bits=bits, rounding=rounding)
    rng = np.random.default_rng(0)
    special = [2**-149, 3 * 2**-149, 2**-126, 1.0, 2.0, 3.0, 0.75, 2.1, 3.4e38]
    mantissas = rng.random(4000) + 1
    thresholds = np.concatenate([special, mantissas * 2.0 ** rng.integers(-149, 127, 4000)])
    thresholds = thresholds.astype(np.float32).astype(np.float64)
    thresholds = thresholds[thresholds > 0]
    edges = codec._edges(thresholds)
    levels = codec.levels
    rule = np.rint if rounding == "nearest" else np.floor

    def code(v: np.ndarray) -> np.ndarray:
        return rule(v.astype(np.float64) * levels / thresholds[:, None])

    target = np.arange(1, levels)
    below = np.nextafter(edges, np.float32(0))
    assert np.all(code(edges) >= target)
    assert np.all(code(below) < target)
    assert np.all(codec._edges(np.array([0.0, -1.0])) == np.inf)


def _reference_payload(x: np.ndarray, codec: MaskSparsification) -> tuple[bytes, bytes, bytes]:
    """Values bytes, mask bytes and decoded bytes of MS, from `_reference` and bit loops."""
    units = _units(codec, x)
    k = codec.keep_count(units.shape[1])
    codes, kept, decoded = [], [], np.zeros(units.shape, np.float32)
    for row, unit in enumerate(units):
        magnitude, values = _reference(unit, k, codec.bits, codec.rounding)
        sign = (unit < 0) & (magnitude > 0) & (magnitude < codec.levels) & codec.signed
        codes.append(magnitude | sign.astype(np.int64) << codec.bits)
        kept.append(values)
        threshold = float(np.abs(values).min()) if k else 0.0
        level = (magnitude * threshold / codec.levels).astype(np.float32)
        decoded[row] = np.where(sign, -level, level)
        decoded[row][magnitude == codec.levels] = values
    stream = [(int(c) >> j) & 1 for c in np.concatenate(codes) for j in range(codec.width)]
    mask = np.packbits(np.array(stream, np.uint8), bitorder="little")
    return np.concatenate(kept).astype(np.float32).tobytes(), mask.tobytes(), decoded.tobytes()


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("scope", ["batch", "sample"])
@pytest.mark.parametrize("bits", range(1, 9))
@pytest.mark.parametrize(("shape", "ratio"), [((16, 16, 8, 8), 0.99), ((16, 32, 20), 0.95)])
def test_payload_and_decode_pinned_to_the_reference_on_benchmark_shapes(
    shape, ratio, bits, scope, signed
):
    """Fast paths (pruned top-k, level edges, word packing, byte lookup) change no byte."""
    rng = np.random.default_rng(bits)
    x = np.round(rng.standard_normal(shape) * 4).astype(np.float32) / 4  # many ties, zeros
    x = x if signed else np.maximum(x, 0)
    for rounding in ROUNDINGS:
        codec = MaskSparsification(ratio, bits, rounding, scope, signed)
        encoded = codec.encode(torch.from_numpy(x))
        values, mask, decoded = _reference_payload(x, codec)
        assert encoded.arrays["values"].tobytes() == values
        assert encoded.arrays["mask"].tobytes() == mask
        assert codec.decode(encoded).numpy().tobytes() == decoded


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([(1, False), (2, False), (4, False), (8, False), (1, True), (3, True)]),
    st.integers(1, 70),
    st.data(),
)
def test_byte_mask_checks_match_the_code_checks(options, count, data):
    """`_check_bytes` (one unit, whole bytes) keeps and rejects what `_check_codes` does."""
    bits, signed = options
    codec = MaskSparsification(bits=bits, signed=signed)
    codes = np.array(
        data.draw(st.lists(st.integers(0, 2**codec.width - 1), min_size=count, max_size=count)),
        np.uint8,
    )
    if data.draw(st.booleans(), label="valid sign bits"):
        codes[(codes & codec.levels == 0) | (codes & codec.levels == codec.levels)] &= codec.levels
    top = int(np.count_nonzero(codes & codec.levels == codec.levels))
    k = data.draw(st.sampled_from([top, max(top - 1, 0), top + 1]))
    empty = data.draw(st.booleans())
    packed = pack_bits(codes, codec.width)
    outcomes = []
    for check in (
        lambda: codec._check_codes(codes.reshape(1, -1), k, np.array([empty])),
        lambda: codec._check_bytes(packed, k, empty),
    ):
        try:
            outcomes.append(check().tolist())
        except CodecError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]
