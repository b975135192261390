"""`LazySeedContext`: the seed is derived only when a codec reads it, and is then the same."""

from __future__ import annotations

import torch

from flwr_split.codecs import CodecContext, LazySeedContext, get_codec
from flwr_split.common.seeds import codec_seed


def counting(seed: int) -> tuple[LazySeedContext, list[int]]:
    calls: list[int] = []

    def derive() -> int:
        calls.append(seed)
        return seed

    return LazySeedContext(derive), calls


def test_deterministic_codecs_never_derive_the_seed():
    tensor = torch.rand(4, 3, 5, 5)
    for spec in ("identity", "fp16", "quant:bits=8", "topk:ratio=0.5", "slfac"):
        ctx, calls = counting(7)
        get_codec(spec).encode(tensor, ctx)
        assert calls == [], spec


def test_a_stochastic_codec_derives_once_and_encodes_as_with_the_seed_itself():
    tensor = torch.rand(4, 3, 5, 5)
    codec = get_codec("quant:bits=2,stochastic=true")
    ctx, calls = counting(codec_seed(1, 2, 3))
    lazy = codec.encode(tensor, ctx)
    eager = codec.encode(tensor, CodecContext(seed=codec_seed(1, 2, 3)))
    assert calls == [codec_seed(1, 2, 3)]
    assert lazy.arrays.keys() == eager.arrays.keys()
    assert all((lazy.arrays[k] == eager.arrays[k]).all() for k in lazy.arrays)
    assert ctx.seed == codec_seed(1, 2, 3) and calls == [codec_seed(1, 2, 3)]  # cached
