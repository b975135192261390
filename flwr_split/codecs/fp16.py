"""Half-precision codec: values rounded to float16 (2 bytes each)."""

from __future__ import annotations

import math

import numpy as np
import torch

from flwr_split.codecs.base import (
    Codec,
    CodecContext,
    CodecError,
    Encoded,
    require_array,
    shape_from_meta,
)
from flwr_split.codecs.blocks import finite_flat, scan_blocks
from flwr_split.codecs.registry import register_codec

FP16_MAX = float(np.finfo(np.float16).max)
"""Largest finite float16 magnitude (65504); anything larger would become inf."""


@register_codec
class Fp16(Codec):
    """Send values as IEEE float16: ``nbytes = 2 * numel``.

    Relative error is at most ``2**-11`` for normal values; magnitudes below
    ``2**-14`` lose precision (subnormals) or flush to zero. The codec has no
    options.

    Raises
    ------
    CodecError
        From ``encode`` if a value's magnitude exceeds 65504 (float16 max).
    """

    codec_id = "fp16"
    example_spec = "fp16"

    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Round ``tensor`` to float16; the payload is the array ``values``."""
        values, lo, hi = finite_flat(tensor, np.float16)  # the cast and the checks in one pass
        peak = max(-lo, hi)
        if peak > FP16_MAX:
            raise CodecError(
                f"tensor holds magnitudes up to {peak:g}, beyond the float16 maximum {FP16_MAX:g}"
            )
        return Encoded({"values": values}, {"shape": list(tensor.shape)})

    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Widen the float16 ``values`` back to a float32 tensor of the original shape."""
        shape = shape_from_meta(encoded)
        values = require_array(encoded, "values", np.float16, math.prod(shape))
        decoded, lo, hi = scan_blocks(values, np.float32)
        if not math.isfinite(lo + hi):  # float16 inf and NaN stay inf and NaN
            raise CodecError("array 'values' holds NaN or inf values")
        return torch.from_numpy(decoded).reshape(shape)
