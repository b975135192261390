"""Top-k sparsification codec: keep the largest-magnitude entries, drop the rest."""

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
    check_float_tensor,
    require_array,
    require_finite,
    require_scalar,
    shape_from_meta,
)
from flwr_split.codecs.bitpack import index_bits, pack_bits, packed_nbytes, unpack_bits
from flwr_split.codecs.registry import register_codec
from flwr_split.codecs.selection import finite_flat_candidates, largest_positions


@register_codec
class TopK(Codec):
    """Keep the ``k = floor((1 - ratio) * numel)`` entries of largest magnitude.

    Exactly ``k`` entries are kept; ties at the cut-off go to the lower flat
    position. ``k`` is computed exactly from the shortest decimal form of
    ``ratio`` (so ``ratio=0.9`` keeps 1 of 10 entries despite float rounding).
    Dropped entries decode to zero.

    Payload: ``values`` (``float32``, the kept entries in ascending position
    order) plus the positions, in the smaller of two formats (``bitmap`` on a
    tie), named by ``meta["index_format"]``:

    - ``"bitmap"``: array ``bitmap``, one bit per entry, ``ceil(numel / 8)`` bytes;
    - ``"packed"``: array ``indices``, each position in ``index_bits(numel)``
      bits, ``ceil(k * index_bits(numel) / 8)`` bytes.

    Bits are packed little-endian as in `pack_bits`.

    Parameters
    ----------
    ratio : float, default 0.99
        Fraction of entries dropped, in ``[0, 1)``.

    Raises
    ------
    CodecError
        If ``ratio`` is not a number in ``[0, 1)``.
    """

    codec_id = "topk"
    example_spec = "topk:ratio=0.99"

    def __init__(self, ratio: float = 0.99) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            raise CodecError(f"topk ratio must be a number in [0, 1), got {ratio!r}")
        self.ratio = float(ratio)

    def get_config(self) -> dict[str, float | str]:
        """Return ``{"id": "topk", "ratio": ...}``."""
        return {"id": self.codec_id, "ratio": self.ratio}

    def keep_count(self, numel: int) -> int:
        """Return ``k = floor((1 - ratio) * numel)``, computed in exact arithmetic."""
        return math.floor((1 - Fraction(repr(self.ratio))) * numel)

    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Keep the ``k`` largest-magnitude entries and their positions."""
        check_float_tensor(tensor)
        k = self.keep_count(tensor.numel())
        flat, lowest, _, candidates = finite_flat_candidates(tensor, k)
        positions = largest_positions(flat, k, candidates, absolute=lowest < 0)
        width = index_bits(flat.size)
        arrays = {"values": flat[positions]}
        if packed_nbytes(width, k) < packed_nbytes(1, flat.size):
            index_format = "packed"
            arrays["indices"] = pack_bits(positions, width)
        else:
            index_format = "bitmap"
            mask = np.zeros(flat.size, dtype=np.uint8)
            mask[positions] = 1
            arrays["bitmap"] = pack_bits(mask, 1)
        meta = {"shape": list(tensor.shape), "k": k, "index_format": index_format}
        return Encoded(arrays, meta)

    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Scatter ``values`` to their positions in a zero tensor of the original shape."""
        shape = shape_from_meta(encoded)
        numel = math.prod(shape)
        k = require_scalar(encoded, "k", int)
        if k != self.keep_count(numel):
            raise CodecError(
                f"payload keeps k={k} entries, but ratio {self.ratio} keeps "
                f"{self.keep_count(numel)} of {numel}"
            )
        values = require_finite("values", require_array(encoded, "values", np.float32, k))
        index_format = require_scalar(encoded, "index_format", str)
        if index_format == "bitmap":
            bitmap = require_array(encoded, "bitmap", np.uint8, packed_nbytes(1, numel))
            positions = np.flatnonzero(unpack_bits(bitmap, 1, numel))
            if positions.size != k:
                raise CodecError(f"bitmap marks {positions.size} positions, expected k={k}")
        elif index_format == "packed":
            width = index_bits(numel)
            indices = require_array(encoded, "indices", np.uint8, packed_nbytes(width, k))
            positions = unpack_bits(indices, width, k)
            if np.any(np.diff(positions) <= 0):
                raise CodecError("indices are not strictly ascending")
            if positions.size and positions[-1] >= numel:
                raise CodecError(f"index {positions[-1]} is out of range for {numel} entries")
        else:
            raise CodecError(
                f"metadata 'index_format' must be 'bitmap' or 'packed', got {index_format!r}"
            )
        dense = np.zeros(numel, dtype=np.float32)
        dense[positions] = values
        return torch.from_numpy(dense).reshape(shape)
