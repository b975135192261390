"""Identity codec: the float32 tensor as it is (the uncompressed baseline)."""

from __future__ import annotations

import numpy as np
import torch

from flwr_split.codecs.base import (
    Codec,
    CodecContext,
    Encoded,
    check_finite,
    require_array,
    require_finite,
    shape_from_meta,
)
from flwr_split.codecs.registry import register_codec


@register_codec
class Identity(Codec):
    """Send float32 values unchanged: ``nbytes = 4 * numel``."""

    codec_id = "identity"

    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Return the values as a flat float32 array, ``shape`` in meta."""
        check_finite(tensor)
        values = tensor.detach().to(torch.float32).cpu().contiguous().numpy().reshape(-1)
        return Encoded({"values": values.copy()}, {"shape": list(tensor.shape)})

    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Rebuild the tensor; raise `CodecError` on a wrong size, dtype or shape, or NaN/inf."""
        shape = shape_from_meta(encoded)
        numel = int(np.prod(shape, dtype=np.int64))
        values = require_finite("values", require_array(encoded, "values", np.float32, numel))
        return torch.from_numpy(values.copy()).reshape(shape)
