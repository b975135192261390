"""Contract tests that every registered codec must pass (new codecs are picked up automatically)."""

import copy
import inspect

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_split.codecs import (
    Codec,
    CodecContext,
    CodecError,
    Encoded,
    get_codec,
    registered_codecs,
)

codec_ids = pytest.mark.parametrize("codec_id", registered_codecs())

tensors = hnp.arrays(
    np.float32,
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    elements=st.floats(-1e4, 1e4, width=32),
)


def _sample(codec: Codec) -> torch.Tensor:
    """A tensor large enough that every payload array of every codec is non-empty.

    Non-negative for codecs that do not accept negative values.
    """
    x = torch.randn(8, 30, generator=torch.Generator().manual_seed(0))
    return x if codec.accepts_negative else x.abs()


def _is_plain_meta(value) -> bool:
    if isinstance(value, list):
        return all(type(v) in (int, float) for v in value)
    return type(value) in (int, float, str, bool)


@codec_ids
@settings(max_examples=40, deadline=None)
@given(array=tensors, seed=st.integers(0, 2**31))
@example(array=np.array(2.5, np.float32), seed=0)
@example(array=np.zeros((0,), np.float32), seed=0)
@example(array=np.zeros((2, 0, 3), np.float32), seed=0)
def test_round_trip_keeps_shape_and_float32_dtype(codec_id, array, seed):
    codec = get_codec(codec_id)
    x = torch.from_numpy(array)
    x = x if codec.accepts_negative else x.abs()
    decoded = codec.decode(codec.encode(x, CodecContext(seed)), CodecContext(seed))
    assert decoded.shape == x.shape
    assert decoded.dtype == torch.float32
    assert torch.isfinite(decoded).all()


@codec_ids
def test_config_round_trips_to_an_equal_codec(codec_id):
    codec = get_codec(codec_id)
    config = codec.get_config()
    assert config["id"] == codec_id
    assert all(type(v) in (int, float, str, bool) for v in config.values())
    assert type(codec).from_config(config) == codec
    assert get_codec(config) == codec
    assert get_codec(copy.deepcopy(config)).get_config() == config


@codec_ids
def test_config_lists_every_constructor_option(codec_id):
    codec = get_codec(codec_id)
    options = set(inspect.signature(type(codec)).parameters)
    assert options == set(codec.get_config()) - {"id"}


@codec_ids
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input_raises(codec_id, bad):
    codec = get_codec(codec_id)
    x = _sample(codec)
    x[3, 7] = bad
    with pytest.raises(CodecError, match="NaN or inf"):
        codec.encode(x)


@codec_ids
def test_negative_input_raises_unless_accepted(codec_id):
    codec = get_codec(codec_id)
    x = _sample(codec)
    x[3, 7] = -1.0
    if codec.accepts_negative:
        codec.decode(codec.encode(x))
    else:
        with pytest.raises(CodecError, match="negative"):
            codec.encode(x)


@codec_ids
def test_non_tensor_or_integer_input_raises(codec_id):
    codec = get_codec(codec_id)
    with pytest.raises(CodecError):
        codec.encode(np.zeros(3, np.float32))
    with pytest.raises(CodecError):
        codec.encode(torch.arange(3))


@codec_ids
@pytest.mark.parametrize("shape", [(), (1,), (5, 7)])
def test_all_equal_input_round_trips(codec_id, shape):
    codec = get_codec(codec_id)
    decoded = codec.decode(codec.encode(torch.full(shape, 1.5)))
    assert decoded.shape == shape
    assert torch.isfinite(decoded).all()


@codec_ids
def test_nbytes_is_the_sum_of_payload_array_bytes(codec_id):
    codec = get_codec(codec_id)
    encoded = codec.encode(_sample(codec))
    assert all(isinstance(a, np.ndarray) for a in encoded.arrays.values())
    assert codec.nbytes(encoded) == sum(a.nbytes for a in encoded.arrays.values())


@codec_ids
def test_meta_holds_only_plain_python_values(codec_id):
    codec = get_codec(codec_id)
    encoded = codec.encode(_sample(codec))
    assert encoded.meta["shape"] == [8, 30]
    assert all(_is_plain_meta(v) for v in encoded.meta.values())


@codec_ids
def test_same_seed_gives_the_same_encoding(codec_id):
    codec = get_codec(codec_id)
    first, again = (codec.encode(_sample(codec), CodecContext(seed=42)) for _ in range(2))
    assert first.meta == again.meta
    assert first.arrays.keys() == again.arrays.keys()
    for name in first.arrays:
        np.testing.assert_array_equal(first.arrays[name], again.arrays[name])


@codec_ids
def test_encode_leaves_the_input_unchanged(codec_id):
    codec = get_codec(codec_id)
    x = _sample(codec)
    codec.encode(x)
    assert torch.equal(x, _sample(codec))


def _malformed(codec_id: str, change) -> None:
    """Apply ``change(encoded)`` to a fresh payload of each array and expect `CodecError`."""
    codec = get_codec(codec_id)
    for name in codec.encode(_sample(codec)).arrays:
        encoded = codec.encode(_sample(codec))
        change(encoded, name)
        with pytest.raises(CodecError):
            codec.decode(encoded)


@codec_ids
def test_decode_rejects_a_missing_array(codec_id):
    def drop(encoded: Encoded, name: str) -> None:
        del encoded.arrays[name]

    _malformed(codec_id, drop)


@codec_ids
def test_decode_rejects_an_array_of_the_wrong_dtype(codec_id):
    def retype(encoded: Encoded, name: str) -> None:
        array = encoded.arrays[name]
        other = np.float32 if array.dtype == np.float64 else np.float64
        encoded.arrays[name] = array.astype(other)

    _malformed(codec_id, retype)


@codec_ids
def test_decode_rejects_a_truncated_array(codec_id):
    def truncate(encoded: Encoded, name: str) -> None:
        assert encoded.arrays[name].size, "sample payload array should be non-empty"
        encoded.arrays[name] = encoded.arrays[name][:-1]

    _malformed(codec_id, truncate)


@codec_ids
def test_decode_rejects_an_overlong_array(codec_id):
    def extend(encoded: Encoded, name: str) -> None:
        array = encoded.arrays[name]
        encoded.arrays[name] = np.concatenate([array, array[:1]])

    _malformed(codec_id, extend)


@codec_ids
@pytest.mark.parametrize(
    "shape",
    [None, "8,30", 240, [8, -30], [8, 30.0], [8, True], [[8], 30], [8, 300], [2**62, 2**62]],
)
def test_decode_rejects_bad_shape_meta(codec_id, shape):
    codec = get_codec(codec_id)
    encoded = codec.encode(_sample(codec))
    if shape is None:
        del encoded.meta["shape"]
    else:
        encoded.meta["shape"] = shape
    with pytest.raises(CodecError):
        codec.decode(encoded)


@pytest.mark.parametrize("codec_id", registered_codecs())
def test_absurd_shape_in_metadata_is_a_codec_error(codec_id):
    codec = get_codec(codec_id)
    encoded = codec.encode(torch.zeros(0, 3))
    encoded.meta["shape"] = [2**63, 0]
    with pytest.raises(CodecError):
        codec.decode(encoded)


@codec_ids
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_decode_of_corrupted_bytes_raises_codec_error_or_gives_a_finite_tensor(codec_id, data):
    """Flipped bits in any payload array (untrusted network input): a `CodecError`, or a
    finite tensor of the encoded shape; never another exception, never NaN or inf."""
    codec = get_codec(codec_id)
    x = _sample(codec)
    encoded = codec.encode(x, CodecContext(1))
    name = data.draw(st.sampled_from(sorted(encoded.arrays)))
    array = encoded.arrays[name]
    raw = array.reshape(-1).view(np.uint8).copy()
    for position in data.draw(st.lists(st.integers(0, raw.size - 1), min_size=1, max_size=4)):
        raw[position] ^= data.draw(st.integers(1, 255))
    encoded.arrays[name] = raw.view(array.dtype).reshape(array.shape)
    try:
        out = codec.decode(encoded, CodecContext(1))
    except CodecError:
        return
    assert tuple(out.shape) == tuple(x.shape)
    assert torch.isfinite(out).all()


@codec_ids
@pytest.mark.parametrize("extreme", [np.finfo(np.float32).max, np.finfo(np.float16).max])
def test_extreme_finite_floats_in_a_payload_give_a_codec_error_or_a_finite_tensor(
    codec_id, extreme
):
    """Every float payload array set to +-(a huge finite value): no overflow to inf on decode."""
    codec = get_codec(codec_id)
    x = _sample(codec)
    for name, array in codec.encode(x, CodecContext(1)).arrays.items():
        if array.dtype.kind != "f":
            continue
        encoded = codec.encode(x, CodecContext(1))
        signs = np.where(np.arange(array.size) % 2 == 0, -1.0, 1.0).reshape(array.shape)
        encoded.arrays[name] = (signs * min(extreme, np.finfo(array.dtype).max)).astype(array.dtype)
        try:
            out = codec.decode(encoded, CodecContext(1))
        except CodecError:
            continue
        assert torch.isfinite(out).all(), name
