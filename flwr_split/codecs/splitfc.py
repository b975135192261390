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
    flat_float32,
    require_array,
    require_finite,
    shape_from_meta,
)
from flwr_split.codecs.bitpack import pack_bits, packed_nbytes, unpack_bits
from flwr_split.codecs.minmax import dequantize, quantize
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


@register_codec
class SplitFC(Codec):
    """Feature dropping by spread, then quantization (FC-SL baseline of SL-FAC).

    After SplitFC (Oh et al., arXiv 2307.10805), in the deterministic form the
    SL-FAC paper compares against: of the ``F`` features (channels, see
    `feature_view`), the ``k = ceil(keep * F)`` with the largest standard
    deviation over samples and positions are kept (ties to the lower index);
    every dropped feature is replaced by its mean, and each kept feature is
    min-max quantized over its own range at ``bits`` bits, rounding half to
    even (unbiased stochastic rounding if ``stochastic``).

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
        flat = flat_float32(tensor)
        shape = tuple(tensor.shape)
        batch, features, size = feature_view(shape)
        k = self.keep_count(features)
        x = torch.from_numpy(flat).to(torch.float64).reshape(batch, features, size)
        x = x.transpose(0, 1).reshape(features, batch * size)
        if x.numel():
            spread, means = x.std(1, correction=0), x.mean(1)
        else:
            spread = means = torch.zeros(features, dtype=torch.float64)
        kept = torch.from_numpy(largest_positions(spread.numpy(), k))
        mask = torch.zeros(features, dtype=torch.bool)
        mask[kept] = True
        values = x[kept]
        empty = torch.zeros(k, 1, dtype=torch.float64)
        lo = values.amin(1, keepdim=True) if values.numel() else empty
        hi = values.amax(1, keepdim=True) if values.numel() else empty
        noise = None
        if self.stochastic:
            generator = (ctx or CodecContext()).generator()
            noise = torch.rand(values.shape, generator=generator, dtype=torch.float64)
        codes = quantize(values, lo, hi, self.levels, noise)
        arrays = {
            "mask": pack_bits(mask.numpy().astype(np.uint8), 1),
            "means": means[~mask].numpy().astype(np.float32),
            "ranges": torch.cat([lo, hi], 1).reshape(-1).numpy().astype(np.float32),
            "codes": pack_bits(codes.numpy(), self.bits),
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
        means = require_finite(
            "means", require_array(encoded, "means", np.float32, features - k)
        ).astype(np.float64)
        ranges = require_finite("ranges", require_array(encoded, "ranges", np.float32, 2 * k))
        ranges = torch.from_numpy(ranges.astype(np.float64)).reshape(k, 2)
        if bool((ranges[:, 0] > ranges[:, 1]).any()):
            raise CodecError("a feature range has lo > hi")
        count = k * batch * size
        packed = require_array(encoded, "codes", np.uint8, packed_nbytes(self.bits, count))
        codes = torch.from_numpy(unpack_bits(packed, self.bits, count)).reshape(k, batch * size)
        out = torch.empty(features, batch * size, dtype=torch.float64)
        out[torch.from_numpy(mask)] = dequantize(codes, ranges[:, :1], ranges[:, 1:], self.levels)
        out[torch.from_numpy(~mask)] = torch.from_numpy(means)[:, None]
        out = out.reshape(features, batch, size).transpose(0, 1)
        return out.to(torch.float32).reshape(shape)
