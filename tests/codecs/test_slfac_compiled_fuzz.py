"""SL-FAC's compiled decode (numba) on random payloads: what the numpy decode gives, never a crash.

The compiled kernels read untrusted bytes without bounds checks, so a payload that
passed the Python checks but made a kernel read or write out of bounds would corrupt
memory instead of raising. These payloads are random but well-formed (right dtypes and
lengths for their own random cutoffs, widths and ranges), so they reach the kernels,
or damaged afterwards, at sizes that take the compiled path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flwr_split.codecs.base import CodecError, Encoded
from flwr_split.codecs.segments import pack_segments, segments_nbytes
from flwr_split.codecs.slfac import SLFAC
from flwr_split.codecs.slfac_passes import kernels_for

pytest.importorskip("numba")

SHAPES = [(2, 8, 64, 64), (256, 16, 4, 4), (4, 4, 1, 4096), (8, 8, 32, 32)]
"""65,536 values each: large planes (natural layout), small ones (one matmul), 1-D rows, and
32 x 32 planes (Lee's algorithm, inverse-transformed inside the kernel)."""
OPTIONS = [
    {},
    {"theta": 1.0, "bmin": 2, "bmax": 8},
    {"hf_drop": True},
    {"bmin": 9, "bmax": 24},
    {"cutoff_scope": "tensor", "bmin": 1, "bmax": 4},
]


def test_the_shapes_take_the_compiled_path():
    assert all(kernels_for(math.prod(shape)) is not None for shape in SHAPES)


def random_payload(codec: SLFAC, shape: tuple[int, ...], rng: np.random.Generator) -> Encoded:
    """A well-formed payload of random cutoffs, widths, ranges and codes for ``shape``."""
    _, channels, height, width = (math.prod(shape[:-3]), *shape[-3:])
    count = channels if codec.cutoff_scope == "channel" else 1
    cutoffs = rng.integers(0, height + width - 1, count)
    counts = codec._counts_for(shape, cutoffs)
    present = counts > 0
    bits = rng.integers(codec.bmin, codec.bmax + 1, counts.size)
    if codec.hf_drop:
        bits[1::2] = 0
    bits[~present] = 0
    sent = bits > 0
    scale = 10.0 ** rng.integers(-30, 38)
    ends = np.sort(rng.standard_normal((int(sent.sum()), 2)) * scale, axis=1)
    widths, sizes = bits[sent], counts[sent]
    parts = [rng.integers(0, 2 ** int(b), int(n)) for b, n in zip(widths, sizes, strict=True)]
    codes = np.concatenate(parts or [np.zeros(0, np.int64)])
    return Encoded(
        {
            "cutoffs": cutoffs.astype(np.uint16),
            "bits": bits[present].astype(np.uint8),
            "ranges": ends.reshape(-1).astype(np.float32),
            "codes": pack_segments(codes.astype(np.int32), widths, sizes),
        },
        {"shape": list(shape)},
    )


def damage(encoded: Encoded, rng: np.random.Generator) -> None:
    """Flip a few random bits of one array, in place (lengths and dtypes unchanged)."""
    name = list(encoded.arrays)[int(rng.integers(len(encoded.arrays)))]
    raw = encoded.arrays[name].view(np.uint8)
    if raw.size:
        at = rng.integers(0, raw.size, int(rng.integers(1, 4)))
        raw[at] ^= (1 << rng.integers(0, 8, at.size)).astype(np.uint8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from(SHAPES),
    options=st.sampled_from(OPTIONS),
    seed=st.integers(0, 2**32 - 1),
    damaged=st.booleans(),
)
def test_random_payloads_decode_to_finite_tensors_or_raise_codec_errors(
    shape, options, seed, damaged
):
    codec = SLFAC(**options)
    rng = np.random.default_rng(seed)
    encoded = random_payload(codec, shape, rng)
    assert sum(a.nbytes for a in encoded.arrays.values()) <= 4 * math.prod(shape) + 2**16
    expected = segments_nbytes(*_sent_widths_counts(codec, shape, encoded)).sum()
    assert encoded.arrays["codes"].size == expected  # well-formed before any damage
    if damaged:
        damage(encoded, rng)
    compiled, reference = (
        outcome(codec.decode, encoded),
        outcome(numpy_decode(codec, shape), encoded),
    )
    if isinstance(compiled, str):
        assert isinstance(reference, str), f"only the compiled path refused: {compiled}"
        return
    assert isinstance(reference, torch.Tensor), f"only the numpy path refused: {reference}"
    assert compiled.shape == torch.Size(shape) and compiled.dtype == torch.float32
    assert torch.isfinite(compiled).all()
    assert torch.equal(compiled, reference)


def outcome(decode, encoded: Encoded) -> torch.Tensor | str:
    """The decoded tensor, or the `CodecError`'s message (any other exception propagates)."""
    try:
        return decode(Encoded(dict(encoded.arrays), dict(encoded.meta)))
    except CodecError as exc:
        return str(exc)


def numpy_decode(codec: SLFAC, shape: tuple[int, ...]):
    """SL-FAC's numpy decode (`parse`, `reconstruct`): the reference the kernels must match."""
    return lambda encoded: codec.reconstruct(codec.parse(encoded, shape))


def _sent_widths_counts(
    codec: SLFAC, shape: tuple[int, ...], encoded: Encoded
) -> tuple[np.ndarray, np.ndarray]:
    counts = codec._counts_for(shape, encoded.arrays["cutoffs"].astype(np.int64))
    bits = np.zeros(counts.size, np.int64)
    bits[counts > 0] = encoded.arrays["bits"]
    return bits[bits > 0], counts[bits > 0]
