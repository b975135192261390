"""Identity codec: the float32 tensor as it is (the uncompressed baseline)."""

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


@register_codec
class Identity(Codec):
    """Send float32 values unchanged: ``nbytes = 4 * numel``."""

    codec_id = "identity"
    example_spec = "identity"

    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Return the values as a flat float32 array (a copy), ``shape`` in meta."""
        values = finite_flat(tensor, np.float32)[0]  # the copy and the check in one pass
        return Encoded({"values": values}, {"shape": list(tensor.shape)})

    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Rebuild the tensor; raise `CodecError` on a wrong size, dtype or shape, or NaN/inf.

        The payload's own buffer is handed over when `owned_buffer` says it may be: the
        tensor then shares memory with ``encoded.arrays["values"]`` and costs one read
        (the finiteness check) instead of a copy. Every array `flwr_split.wire.from_array`
        reads and every `encode` output is such a buffer, used once: an `Encoded` is not
        decoded twice or read after its decode. Any other array (read-only, a view, not
        C-ordered) is copied, so the tensor never aliases memory the caller still uses.
        """
        shape = shape_from_meta(encoded)
        values = require_array(encoded, "values", np.float32, math.prod(shape))
        owned = owned_buffer(encoded.arrays["values"])
        decoded, lo, hi = scan_blocks(values, None if owned else np.float32)
        if not math.isfinite(lo + hi):
            raise CodecError("array 'values' holds NaN or inf values")
        return torch.from_numpy(decoded).reshape(shape)


def owned_buffer(array: object) -> bool:
    """Return True if ``array`` is a writable C-ordered numpy array that owns its memory.

    It is then no view of another array, a tensor or received bytes (``np.frombuffer``
    arrays are read-only), so a decoder of a payload used once may return a tensor over it.
    """
    if not isinstance(array, np.ndarray):
        return False
    flags = array.flags
    return bool(flags.owndata and flags.writeable and flags.c_contiguous)
