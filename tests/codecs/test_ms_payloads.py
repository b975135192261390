"""Mask-encoded sparsification: options, config, malformed payloads and pinned references."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.codecs import CodecError, Encoded, get_codec
from flwr_split.codecs.bitpack import pack_bits
from flwr_split.codecs.ms import ROUNDINGS, MaskSparsification
from tests.codecs.ms_cases import (
    FIG1,
    mask_codes,
    reference_unit,
    scopes,
    unit_rows,
)

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
    codes = mask_codes(codec, encoded)
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
    codes = mask_codes(codec, encoded)
    codes[codes != codec.levels] = 1
    encoded.arrays["mask"] = pack_bits(codes, codec.width)
    with pytest.raises(CodecError, match="smallest kept value is 0"):
        codec.decode(encoded)


@pytest.mark.parametrize("where", ["kept", "zero"])
def test_decode_rejects_misplaced_sign_bits(where):
    codec, encoded = _payload(signed=True)
    codes = mask_codes(codec, encoded)
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
    """Values bytes, mask bytes and decoded bytes of MS, from `reference_unit` and bit loops."""
    units = unit_rows(codec, x)
    k = codec.keep_count(units.shape[1])
    codes, kept, decoded = [], [], np.zeros(units.shape, np.float32)
    for row, unit in enumerate(units):
        magnitude, values = reference_unit(unit, k, codec.bits, codec.rounding)
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
