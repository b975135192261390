"""`decode_tensor`: the server's and clients' gate for every encoded tensor from the network."""

from __future__ import annotations

import pytest
import torch

from flwr_split.codecs import Encoded, get_codec
from flwr_split.wire import ProtocolError, decode_tensor

CODECS = ["identity", "quant:bits=4", "fedlite:q=1,clusters=1", "slfac:theta=0.9,bmin=2,bmax=8"]


@pytest.mark.parametrize("spec", CODECS)
def test_a_payload_declaring_a_huge_shape_is_refused_before_decoding(spec):
    codec = get_codec(spec)
    encoded = codec.encode(torch.rand(2, 3, 4, 4))
    encoded.meta["shape"] = [2**40, 3, 4, 4]
    with pytest.raises(ProtocolError, match="declares shape"):
        decode_tensor(codec, encoded, (2, 3, 4, 4), "activations")


def test_a_payload_without_a_shape_is_refused():
    codec = get_codec("identity")
    encoded = codec.encode(torch.rand(2, 3))
    del encoded.meta["shape"]
    with pytest.raises(ProtocolError, match="shape"):
        decode_tensor(codec, encoded, (2, 3), "activations")


@pytest.mark.parametrize("failure", [MemoryError, IndexError, RuntimeError, OverflowError])
def test_any_decoder_failure_becomes_a_protocol_error(failure):
    class Failing:
        def decode(self, encoded: Encoded) -> torch.Tensor:
            raise failure("hostile payload")

    encoded = Encoded({}, {"shape": [2, 3]})
    with pytest.raises(ProtocolError, match=f"undecodable payload: {failure.__name__}"):
        decode_tensor(Failing(), encoded, (2, 3), "activations")


def test_a_good_payload_decodes():
    codec = get_codec("identity")
    tensor = torch.rand(2, 3)
    assert torch.equal(decode_tensor(codec, codec.encode(tensor), (2, 3), "x"), tensor)
