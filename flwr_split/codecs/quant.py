"""Uniform min-max quantization codec: ``bits``-bit codes over the tensor's range."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from flwr_split.codecs.base import (
    Codec,
    CodecContext,
    CodecError,
    Encoded,
    require_array,
    require_finite,
    require_scalar,
    shape_from_meta,
)
from flwr_split.codecs.bitpack import pack_bits, packed_nbytes
from flwr_split.codecs.blocks import decoding_table, finite_flat, lookup_packed, quantize_blocks
from flwr_split.codecs.registry import register_codec

MAX_BITS = 16
"""Widest code `Quant` accepts."""


@register_codec
class Quant(Codec):
    """Quantize uniformly between the tensor's minimum and maximum.

    With ``lo = min(x)``, ``hi = max(x)``, ``levels = 2**bits - 1`` and
    ``step = (hi - lo) / levels``, each value becomes the code
    ``round((x - lo) / step)`` (ties to even) or, if ``stochastic``,
    ``floor((x - lo) / step + u)`` with ``u ~ U[0, 1)`` drawn from
    ``ctx.generator()``, which is unbiased. Codes are clamped to
    ``[0, levels]`` and bit-packed. Codes are computed in float32 block by
    block (`quantize_blocks`), so the reconstruction ``lo + code * step`` is
    within ``step * (1/2 + 2**(bits - 22))`` (deterministic) or
    ``step * (1 + 2**(bits - 22))`` (stochastic) of ``x``, up to one float32
    rounding; decoding looks each code up in a table computed in float64.

    Payload: ``codes`` (``uint8``, ``ceil(bits * numel / 8)`` bytes) and
    ``range`` (``float32 [lo, hi]``, 8 bytes). A constant tensor decodes
    exactly; an empty one sends ``range = [0, 0]``.

    Parameters
    ----------
    bits : int, default 8
        Bits per code, 1..16.
    stochastic : bool, default False
        Use unbiased stochastic rounding instead of round-to-nearest.

    Raises
    ------
    CodecError
        If ``bits`` is not an int in 1..16 or ``stochastic`` is not a bool.
    """

    codec_id = "quant"
    example_spec = "quant:bits=8"

    def __init__(self, bits: int = 8, stochastic: bool = False) -> None:
        name = self.codec_id
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise CodecError(f"{name} bits must be an int in 1..{MAX_BITS}, got {bits!r}")
        if not isinstance(stochastic, bool):
            raise CodecError(f"{name} stochastic must be a bool, got {stochastic!r}")
        self.bits = bits
        self.stochastic = stochastic

    @property
    def levels(self) -> int:
        """Return the largest code, ``2**bits - 1``."""
        return 2**self.bits - 1

    def get_config(self) -> dict[str, int | bool | str]:
        """Return ``{"id": "quant", "bits": ..., "stochastic": ...}``."""
        return {"id": self.codec_id, "bits": self.bits, "stochastic": self.stochastic}

    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Quantize ``tensor``; ``ctx.seed`` drives stochastic rounding (seed 0 if None)."""
        flat, *ends = finite_flat(tensor)
        lo, hi = (float(np.float32(self.forward(end))) for end in ends)  # what the decoder sees
        generator = (ctx or CodecContext()).generator() if self.stochastic else None
        codes = quantize_blocks(flat, lo, hi, self.levels, generator, self.block_forward(ends[0]))
        arrays = {
            # 8-bit codes (uint8, in range by construction) are their own packing: no copy
            "codes": codes if self.bits == 8 else pack_bits(codes, self.bits),
            "range": np.array([lo, hi], dtype=np.float32),
        }
        return Encoded(arrays, {"shape": list(tensor.shape), **self.wire_options()})

    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Rebuild ``lo + code * step``, clipped to ``[lo, hi]``, as float32."""
        shape = shape_from_meta(encoded)
        numel = math.prod(shape)
        for name, value in self.wire_options().items():
            sent = require_scalar(encoded, name, type(value))
            if sent != value:
                raise CodecError(
                    f"payload was quantized with {name}={sent}, this codec uses {value}"
                )
        lo, hi = require_finite("range", require_array(encoded, "range", np.float32, 2)).tolist()
        if lo > hi:
            raise CodecError(f"range [{lo!r}, {hi!r}] has lo > hi")
        packed = require_array(encoded, "codes", np.uint8, packed_nbytes(self.bits, numel))
        table = decoding_table(lo, hi, self.levels, self.inverse)
        if not np.isfinite(table).all():  # e.g. powerquant's inverse of a huge range
            raise CodecError(f"range [{lo!r}, {hi!r}] decodes to values beyond float32")
        return torch.from_numpy(lookup_packed(packed, self.bits, numel, table)).reshape(shape)

    def wire_options(self) -> dict[str, int | float]:
        """Options the payload's metadata carries, checked by `decode` (``bits`` here)."""
        return {"bits": self.bits}

    def forward(self, value: float) -> float:
        """Map an input value to the domain that is quantized, in float64 (identity here)."""
        return value

    def block_forward(self, lowest: float) -> Callable[[np.ndarray, np.ndarray], None] | None:
        """Return the block form of `forward` for a tensor whose smallest value is ``lowest``.

        ``forward_(block, source)`` writes `forward` of float32 ``source`` into ``block``;
        None stands for the identity (no pass at all).
        """
        return None

    def inverse(self, values: torch.Tensor) -> torch.Tensor:
        """Map dequantized float64 values back to the input domain (identity here)."""
        return values
