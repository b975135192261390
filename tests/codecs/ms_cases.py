"""Shared cases of the mask-encoded sparsification tests: data strategies and references."""

import math

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from flwr_split.codecs import Encoded
from flwr_split.codecs.bitpack import unpack_bits
from flwr_split.codecs.ms import MaskSparsification
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


def mask_codes(codec: MaskSparsification, encoded: Encoded) -> np.ndarray:
    """The unpacked mask codes (with the sign bit, if any) in flat order."""
    numel = math.prod(encoded.meta["shape"])
    return unpack_bits(encoded.arrays["mask"], codec.width, numel)


def unit_rows(codec: MaskSparsification, x: np.ndarray) -> np.ndarray:
    rows, width = codec.units(x.shape)
    return x.reshape(rows, width)


def reference_unit(
    v: np.ndarray, k: int, bits: int, rounding: str
) -> tuple[np.ndarray, np.ndarray]:
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


def topk_decoded(x: torch.Tensor, ratio: float) -> torch.Tensor:
    codec = TopK(ratio=ratio)
    return codec.decode(codec.encode(x))


def check_round_trip(codec: MaskSparsification, x: np.ndarray) -> None:
    """Exact comparison with `reference_unit`, per unit, plus the error bound of C2/C3."""
    encoded = codec.encode(torch.from_numpy(x))
    decoded = codec.decode(encoded).numpy()
    assert decoded.shape == x.shape and decoded.dtype == np.float32
    levels = codec.levels
    codes = unit_rows(codec, mask_codes(codec, encoded).reshape(x.shape))
    magnitude, sign = codes & levels, codes >> codec.bits
    units, out = unit_rows(codec, x), unit_rows(codec, decoded)
    k = encoded.meta["k"]
    kept_all = []
    for row in range(units.shape[0]):  # test-side reference only; the codec is vectorized
        ref_codes, ref_kept = reference_unit(units[row], k, codec.bits, codec.rounding)
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
