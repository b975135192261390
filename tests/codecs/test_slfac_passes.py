"""SL-FAC's numba kernels give the numpy path's payload and decoded bytes (the ``fast`` extra)."""

import numpy as np
import pytest
import torch

from flwr_split.codecs import CodecContext, CodecError, get_codec, slfac_passes
from flwr_split.codecs.base import Encoded
from flwr_split.codecs.blocks import decoding_table
from flwr_split.codecs.dct import dct2_bands
from flwr_split.codecs.slfac_layout import ComponentLayout

pytest.importorskip("numba")

SPECS = (
    "slfac:theta=1.0,bmin=2,bmax=8",
    "slfac:theta=0.9,bmin=1,bmax=7",
    "slfac:theta=0.6,bmin=3,bmax=12,alloc=rd_log",
    "slfac:theta=0.8,alloc=two_level,hf_drop=true",
    "slfac:theta=0.95,cutoff_scope=tensor,bmin=2,bmax=24",
)
SHAPES = ((24, 8, 16, 16), (16, 6, 5, 40), (6, 4, 32, 32), (96, 1000), (40, 7, 300))


def _tensor(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    if seed == 2:
        return torch.zeros(shape)  # zero coefficients: signed zeros in the ranges
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    return x.relu_() if seed % 2 else x.cumsum(-1)  # ReLU'd, or energy at low frequencies


def _round_trip(codec, x: torch.Tensor) -> tuple[dict[str, bytes], bytes]:
    encoded = codec.encode(x, CodecContext(3))
    decoded = codec.decode(encoded, CodecContext(3))
    return {k: v.tobytes() for k, v in encoded.arrays.items()}, decoded.numpy().tobytes()


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("index", range(len(SHAPES)))
def test_compiled_and_numpy_paths_give_the_same_bytes(spec, index, monkeypatch) -> None:
    x, codec = _tensor(SHAPES[index], index), get_codec(spec)
    monkeypatch.setattr(slfac_passes, "MIN_VALUES", 1)
    assert slfac_passes.kernels_for(x.numel()) is not None
    compiled = _round_trip(codec, x)
    monkeypatch.setattr(slfac_passes, "MIN_VALUES", 2**62)
    assert slfac_passes.kernels_for(x.numel()) is None
    assert _round_trip(codec, x) == compiled


def test_compiled_decode_rejects_set_padding_bits(monkeypatch) -> None:
    monkeypatch.setattr(slfac_passes, "MIN_VALUES", 1)
    codec = get_codec("slfac:theta=1.0,bmin=3,bmax=3")
    encoded = codec.encode(_tensor((3, 1, 4, 4), 1), CodecContext())  # 48 codes: 18 bytes
    codec.decode(encoded)
    arrays = dict(encoded.arrays)
    arrays["codes"] = encoded.arrays["codes"].copy()
    arrays["codes"][-1] |= 0x80  # 144 bits exactly: no padding, the top bit is a code's
    codec.decode(Encoded(arrays, encoded.meta))
    short = codec.encode(_tensor((1, 1, 5, 5), 1), CodecContext())  # 25 codes: 75 of 80 bits
    arrays = dict(short.arrays)
    arrays["codes"] = short.arrays["codes"].copy()
    arrays["codes"][-1] |= 0x80
    with pytest.raises(CodecError, match="padding"):
        codec.decode(Encoded(arrays, short.meta))


def test_decoding_tables_equal_one_table_per_component() -> None:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 9, 200)
    lo = rng.normal(size=200) * 5
    hi = lo + np.abs(rng.normal(size=200)) * 3
    hi[::7] = lo[::7]  # constant components
    tables = slfac_passes.decoding_tables(bits, lo, hi)
    assert sorted(tables) == np.flatnonzero(bits).tolist()
    for g, table in tables.items():
        levels = 2 ** int(bits[g]) - 1
        assert np.array_equal(table[: levels + 1], decoding_table(lo[g], hi[g], levels))


@pytest.mark.parametrize("min_values", [1, 2**62])
@pytest.mark.parametrize("shape", [(24, 8, 16, 16), (6, 4, 32, 32), (40, 7, 300)])
def test_results_outlive_the_reused_transform_buffers(min_values, shape, monkeypatch) -> None:
    """Decoded tensors and `dct2_bands` results are fresh, not the per-thread scratch buffers."""
    monkeypatch.setattr(slfac_passes, "MIN_VALUES", min_values)
    codec = get_codec("slfac:theta=0.9,bmin=2,bmax=8")
    first = codec.decode(codec.encode(_tensor(shape, 1), CodecContext()))
    kept = first.clone()
    bands = dct2_bands(_tensor(shape, 3))
    kept_bands = bands.clone()
    codec.decode(codec.encode(_tensor(shape, 3), CodecContext()))
    dct2_bands(_tensor(shape, 1))
    assert torch.equal(first, kept)
    assert torch.equal(bands, kept_bands)


@pytest.mark.parametrize("lows", [[16, 16, 16], [0, 0, 0], [16, 0, 16]])
def test_unsplit_ranges_equal_the_masked_reduction(lows) -> None:
    """Channels wholly low or high reduce their rows unmasked: the same values, zeros' signs too."""
    rng = np.random.default_rng(1)
    per_position = rng.standard_normal((2, 3, 16)).astype(np.float32)
    per_position[:, 1] = rng.choice([0.0, -0.0], (2, 16))
    per_position[:, 0, 0] = -9.0, 9.0  # extremes at the first and last positions
    per_position[:, 2, -1] = -9.0, 9.0
    layout = ComponentLayout(4, np.array(lows), 16)
    masked = ComponentLayout(4, np.array(lows), 16)
    masked.__dict__["_split"] = True  # force the general path
    assert not layout._split
    for got, want in zip(layout.ranges(*per_position), masked.ranges(*per_position), strict=True):
        assert got.tobytes() == want.tobytes()
