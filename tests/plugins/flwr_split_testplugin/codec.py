"""``plugin_scale``: multiply by a factor on the way up, divide on the way down."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from flwr_split.codecs import Codec, CodecContext, CodecError, Encoded
from flwr_split.codecs.base import flat_float32, require_array, require_finite, shape_from_meta


class Scale(Codec):
    """Send ``factor * tensor`` as float32 (no compression; exact for powers of two).

    Parameters
    ----------
    factor : float
        Finite, non-zero multiplier.
    """

    codec_id = "plugin_scale"

    def __init__(self, factor: float = 2.0) -> None:
        if not math.isfinite(factor) or factor == 0:
            raise CodecError(f"factor must be finite and non-zero, got {factor!r}")
        self.factor = float(factor)

    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Scale the values of ``tensor`` by ``factor``."""
        scaled = flat_float32(tensor) * np.float32(self.factor)
        return Encoded({"scaled": scaled}, {"shape": list(tensor.shape)})

    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Divide the received values by ``factor``."""
        shape = shape_from_meta(encoded)
        scaled = require_array(encoded, "scaled", np.float32, math.prod(shape))
        values = require_finite("scaled", scaled) / np.float32(self.factor)
        return torch.from_numpy(values).reshape(shape)

    def get_config(self) -> dict[str, Any]:
        """Return ``{"id": "plugin_scale", "factor": factor}``."""
        return {"id": self.codec_id, "factor": self.factor}
