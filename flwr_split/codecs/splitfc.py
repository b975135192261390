"""SplitFC-style codec: drop the lowest-spread features, min-max quantize the rest."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

from flwr_split.codecs.base import (
    Codec,
    CodecContext,
    CodecError,
    Encoded,
    require_array,
    require_finite,
    shape_from_meta,
)
from flwr_split.codecs.bitpack import pack_bits, packed_nbytes, unpack_bits, unpack_codes
from flwr_split.codecs.blocks import (
    BLOCK,
    decoding_table,
    float32_flat,
    lookup,
    lookup_packed,
    quantize_blocks,
    require_finite_ends,
)
from flwr_split.codecs.registry import register_codec
from flwr_split.codecs.selection import largest_positions

MAX_BITS = 16
"""Widest code `SplitFC` accepts."""


def feature_view(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Return ``(B, F, S)``: samples, features and values per feature and sample.

    ``(B, C, ...)`` has ``C`` features (channels) of ``prod(...)`` values;
    ``(B, D)`` has ``D`` features of one value; ``(D,)`` is one sample and a
    scalar one feature.
    """
    if len(shape) <= 1:
        return 1, math.prod(shape), 1
    return shape[0], shape[1], math.prod(shape[2:])


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the float64 standard deviation and mean of each feature of ``(B, F, S)`` ``x``.

    Two passes in float64 (the mean, then the squared deviations from it), over blocks
    of samples so no float64 copy of ``x`` is made; zeros for features without values.
    The float64 sums of float32 values cannot overflow, so the means are finite exactly
    when every value is: if one is not, the spreads are NaN and the second pass is skipped
    (the caller checks the means instead of scanning ``x`` once more).
    """
    batch, features, size = x.shape
    count = max(batch * size, 1)
    means = x.sum(axis=(0, 2), dtype=np.float64) / count
    if not np.isfinite(means).all():
        return np.full(features, np.nan), means
    squares = np.zeros(features)
    rows = max(1, BLOCK // max(features * size, 1))
    for start in range(0, batch, rows):
        deviations = x[start : start + rows] - means[:, None]
        squares += np.einsum("bfs,bfs->f", deviations, deviations)
    return np.sqrt(squares / count), means


@register_codec
class SplitFC(Codec):
    """Feature dropping by spread, then quantization (FC-SL baseline of SL-FAC).

    After SplitFC (Oh et al., arXiv 2307.10805), in the deterministic form the
    SL-FAC paper compares against: of the ``F`` features (channels, see
    `feature_view`), the ``k = ceil(keep * F)`` with the largest standard
    deviation over samples and positions are kept (ties to the lower index);
    every dropped feature is replaced by its mean, and each kept feature is
    min-max quantized over its own range at ``bits`` bits, rounding half to
    even (unbiased stochastic rounding if ``stochastic``). Spreads and means are
    computed in float64 (`feature_stats`); codes are computed in float32 as
    by `quantize_blocks`, within ``step * (1/2 + 2**(bits - 22))`` of the value
    (``step * (1 + 2**(bits - 22))`` stochastic), ``step`` the feature's
    ``(hi - lo) / (2**bits - 1)``.

    Payload: ``mask`` (``uint8``, one bit per feature, ``ceil(F / 8)`` bytes),
    ``means`` (``float32``, one per dropped feature), ``ranges``
    (``float32 [lo, hi]`` per kept feature) and ``codes`` (``uint8``, the kept
    features' codes, feature by feature, each feature in sample-then-position
    order, packed as in `pack_bits`).

    Parameters
    ----------
    keep : float, default 0.5
        Fraction of features kept, in ``(0, 1]`` (``k`` computed exactly from
        its shortest decimal form).
    bits : int, default 4
        Bits per code of a kept value, 1..16.
    stochastic : bool, default False
        Unbiased stochastic rounding, noise from ``ctx.generator()``.

    Raises
    ------
    CodecError
        If an option is out of range or of the wrong type.
    """

    codec_id = "splitfc"
    example_spec = "splitfc:keep=0.5,bits=4"

    def __init__(self, keep: float = 0.5, bits: int = 4, stochastic: bool = False) -> None:
        if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
            raise CodecError(f"splitfc keep must be a number in (0, 1], got {keep!r}")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise CodecError(f"splitfc bits must be an int in 1..{MAX_BITS}, got {bits!r}")
        if not isinstance(stochastic, bool):
            raise CodecError(f"splitfc stochastic must be a bool, got {stochastic!r}")
        self.keep = float(keep)
        self.bits = bits
        self.stochastic = stochastic

    def get_config(self) -> dict[str, float | int | bool | str]:
        """Return ``{"id": "splitfc", "keep", "bits", "stochastic"}``."""
        return {
            "id": self.codec_id,
            "keep": self.keep,
            "bits": self.bits,
            "stochastic": self.stochastic,
        }

    def keep_count(self, features: int) -> int:
        """Return ``k = ceil(keep * features)``, computed in exact arithmetic."""
        return math.ceil(Fraction(repr(self.keep)) * features)

    @property
    def levels(self) -> int:
        """Return the largest code, ``2**bits - 1``."""
        return 2**self.bits - 1

    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Keep the ``k`` features of largest spread, quantized; send the others' means."""
        flat = float32_flat(tensor)
        shape = tuple(tensor.shape)
        batch, features, size = feature_view(shape)
        k = self.keep_count(features)
        x = flat.reshape(batch, features, size)
        spread, means = feature_stats(x)
        require_finite_ends(tensor, 0.0, float(means.sum()))  # finite iff every value is
        kept = largest_positions(spread, k)
        mask = np.zeros(features, dtype=np.uint8)
        mask[kept] = 1
        generator = (ctx or CodecContext()).generator() if self.stochastic else None
        ranges, codes = np.zeros((k, 2), np.float32), []
        for row, feature in enumerate(kept.tolist()):
            values = np.ascontiguousarray(x[:, feature]).reshape(-1)
            if values.size:
                ranges[row] = values.min(), values.max()
            codes.append(quantize_blocks(values, *ranges[row].tolist(), self.levels, generator))
        arrays = {
            "mask": pack_bits(mask, 1),
            "means": means[mask == 0].astype(np.float32),
            "ranges": ranges.reshape(-1),
            "codes": pack_bits(np.concatenate([np.zeros(0, np.uint8), *codes]), self.bits),
        }
        return Encoded(arrays, {"shape": list(shape)})

    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Fill dropped features with their means and dequantize the kept ones."""
        shape = shape_from_meta(encoded)
        batch, features, size = feature_view(shape)
        k = self.keep_count(features)
        mask = unpack_bits(
            require_array(encoded, "mask", np.uint8, packed_nbytes(1, features)), 1, features
        ).astype(bool)
        if int(mask.sum()) != k:
            raise CodecError(f"mask keeps {int(mask.sum())} features, keep={self.keep} keeps {k}")
        means = require_finite("means", require_array(encoded, "means", np.float32, features - k))
        ranges = require_finite("ranges", require_array(encoded, "ranges", np.float32, 2 * k))
        ranges = ranges.reshape(k, 2)
        if bool((ranges[:, 0] > ranges[:, 1]).any()):
            raise CodecError("a feature range has lo > hi")
        count = k * batch * size
        packed = require_array(encoded, "codes", np.uint8, packed_nbytes(self.bits, count))
        out = np.empty((batch, features, size), np.float32)
        for feature, mean in zip(np.flatnonzero(~mask).tolist(), means.tolist(), strict=True):
            out[:, feature] = mean
        kept = np.flatnonzero(mask).tolist()
        tables = [decoding_table(*bounds, self.levels) for bounds in ranges.tolist()]
        if batch * size * self.bits % 8:  # features do not start on a byte: unpack all codes
            codes = unpack_codes(packed, self.bits, count).reshape(k, batch * size)
            decoded = (lookup(table, row) for table, row in zip(tables, codes, strict=True))
        else:  # each feature's own bytes, looked up a byte at a time
            parts = np.split(packed, k) if k else []
            decoded = (
                lookup_packed(part, self.bits, batch * size, table)
                for table, part in zip(tables, parts, strict=True)
            )
        for feature, values in zip(kept, decoded, strict=True):
            out[:, feature] = values.reshape(batch, size)
        return torch.from_numpy(out).reshape(shape)
