"""Payload and decoded bytes of every codec, pinned: speed work must not change them unnoticed.

A digest that changes on purpose (a new arithmetic or format) is re-pinned in the same commit,
with the reason in docs/benchmarks.md.
"""

import pytest
import torch

from flwr_split.codecs import CodecContext, get_codec, registered_codecs
from tests.helpers import digest

# spec -> SHA-256 prefix of (payload arrays by name, decoded tensor) for each of SHAPES. Changed
# on purpose by the float32 arithmetic of quant, powerquant and splitfc (docs/benchmarks.md,
# "Codec speed"): the stochastic specs (float32 noise) and quant:bits=12 on the larger input.
PINNED = {
    "identity": ("ceadb82f1f132428", "4386ae810562c76a"),
    "fp16": ("7d51b7019032a286", "780b25dc5373cca5"),
    "quant:bits=8": ("c6d4429d7618eac1", "6df83b0c3ec6e094"),
    "quant:bits=3,stochastic=true": ("b4f6341d1e1c145b", "1857de298bd77fbd"),
    "quant:bits=12": ("f98ce5c2ad69c1fb", "c7d8fba489dce911"),
    "powerquant": ("d94ee09511d172d0", "ce0a44a331b9964c"),
    "powerquant:bits=8,stochastic=true": ("7416ef21491d7d99", "2bdac66c9693d455"),
    "splitfc": ("09bc666cdef7b9b7", "f8a73c66b4987fbd"),
    "splitfc:keep=0.25,bits=8,stochastic=true": ("2e1b261b195ad0a5", "1dbd3ee7483f0cf4"),
    "topk:ratio=0.99": ("68857c1494d894eb", "7243e46a7435c875"),
    "ms:ratio=0.99,bits=2": ("1ea75da8c405da5c", "1c4bd24244085490"),
    "ms:ratio=0.9,bits=3,signed=true,scope=sample": ("bf240ffc08fc3269", "66086f7e48ca7291"),
    "slfac": ("e078c97d6bfc14e0", "1040be1d3742bc9f"),
    "slfac:theta=1.0,bmin=2,bmax=8,stochastic=true": ("f3a3b5b80b6801c2", "46087c155186aaf9"),
    "fedlite:q=64,clusters=16,iters=10": ("c8ea58551fe1d7a9", "1b984566b14e8522"),
}


SHAPES = ((4, 16, 8, 8), (3, 16, 40, 40))
"""One block of `flwr_split.codecs.blocks`, and several."""


def _input(shape: tuple[int, ...], non_negative: bool) -> torch.Tensor:
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=generator).relu()
    x += 0.2 * torch.randn(x.shape, generator=generator)
    return x.abs() if non_negative else x


def test_every_registered_codec_is_pinned():
    assert {spec.split(":")[0] for spec in PINNED} == set(registered_codecs())


@pytest.mark.parametrize(("spec", "pinned"), list(PINNED.items()))
def test_payload_and_decoded_bytes_are_pinned(spec, pinned):
    codec = get_codec(spec)
    for shape, expected in zip(SHAPES, pinned, strict=True):
        encoded = codec.encode(_input(shape, not codec.accepts_negative), CodecContext(3))
        decoded = codec.decode(encoded, CodecContext(3))
        arrays = [encoded.arrays[name] for name in sorted(encoded.arrays)]
        assert digest(*arrays, decoded.numpy()) == expected, shape
