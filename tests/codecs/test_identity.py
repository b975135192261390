"""Tests for the identity codec beyond the shared contract."""

import numpy as np
import pytest
import torch

from flwr_split.codecs import CodecError, get_codec


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_decode_refuses_non_finite_values_from_the_network(bad):
    codec = get_codec("identity")
    encoded = codec.encode(torch.ones(2, 3))
    encoded.arrays["values"][4] = bad
    with pytest.raises(CodecError, match="NaN or inf"):
        codec.decode(encoded)


def test_decode_hands_over_an_owned_payload_buffer():
    codec = get_codec("identity")
    x = torch.randn(3, 5)
    encoded = codec.encode(x)
    decoded = codec.decode(encoded)
    assert np.shares_memory(decoded.numpy(), encoded.arrays["values"])
    assert not np.shares_memory(decoded.numpy(), x.numpy())
    assert torch.equal(decoded, x)


@pytest.mark.parametrize("view", ["read_only", "slice", "fortran"])
def test_decode_copies_a_buffer_it_does_not_own(view):
    codec = get_codec("identity")
    x = torch.randn(4, 6)
    if view == "read_only":  # what np.frombuffer gives for received bytes
        values = np.frombuffer(x.numpy().tobytes(), np.float32)
    elif view == "slice":
        values = np.concatenate([x.numpy().reshape(-1), [0.0]]).astype(np.float32)[:-1]
    else:
        values = np.asfortranarray(x.numpy())
    encoded = get_codec("identity").encode(x)
    encoded.arrays["values"] = values
    decoded = codec.decode(encoded)
    assert not np.shares_memory(decoded.numpy(), values)
    assert torch.equal(decoded, x)
