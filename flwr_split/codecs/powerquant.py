"""PowerQuant-style codec: min-max quantization of ``sign(x) * |x|**alpha``."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from flwr_split.codecs.base import CodecError
from flwr_split.codecs.quant import Quant
from flwr_split.codecs.registry import register_codec


@register_codec
class PowerQuant(Quant):
    """Power-function non-uniform quantization (PQ-SL baseline of SL-FAC).

    After PowerQuant (Yvinec et al., ICLR 2023): values are mapped by the
    automorphism ``y = sign(x) * |x|**alpha``, ``y`` is quantized uniformly
    between its minimum and maximum exactly as by the ``quant`` codec, and the
    decoder maps back with ``x = sign(y) * |y|**(1 / alpha)``. With
    ``alpha < 1`` the grid is dense near zero and sparse for large magnitudes,
    which suits the heavy-tailed smashed data; ``alpha = 1`` is ``quant``.
    The exponent is a fixed option here (PowerQuant searches it per layer).

    Payload: ``codes`` (``uint8``, ``ceil(bits * numel / 8)`` bytes) and
    ``range`` (``float32 [lo, hi]`` of ``y``, 8 bytes).

    Parameters
    ----------
    bits : int, default 4
        Bits per code, 1..16.
    alpha : float, default 0.5
        Exponent of the power function, in ``(0, 1]``.
    stochastic : bool, default False
        Unbiased stochastic rounding (in the ``y`` domain).

    Raises
    ------
    CodecError
        If an option is out of range or of the wrong type.
    """

    codec_id = "powerquant"
    example_spec = "powerquant:bits=4,alpha=0.5"

    def __init__(self, bits: int = 4, alpha: float = 0.5, stochastic: bool = False) -> None:
        super().__init__(bits=bits, stochastic=stochastic)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise CodecError(f"powerquant alpha must be a number in (0, 1], got {alpha!r}")
        self.alpha = float(alpha)

    def get_config(self) -> dict[str, int | float | bool | str]:
        """Return ``{"id": "powerquant", "bits", "alpha", "stochastic"}``."""
        return {**super().get_config(), "alpha": self.alpha}

    def wire_options(self) -> dict[str, int | float]:
        """``bits`` and ``alpha``: a payload made with another exponent is refused."""
        return {**super().wire_options(), "alpha": self.alpha}

    def forward(self, value: float) -> float:
        """Return ``sign(x) * |x|**alpha`` in float64."""
        return math.copysign(abs(value) ** self.alpha, value)

    def block_forward(self, lowest: float) -> Callable[[np.ndarray, np.ndarray], None]:
        """Return ``forward_(block, source)``: ``sign(x) * |x|**alpha`` of ``source`` in float32.

        ``alpha = 0.5`` takes the correctly rounded ``sqrt``; other exponents ``pow``, within
        a few float32 roundings of the float64 value (the clamp to ``[0, levels]`` covers
        values a rounding beyond the range ends). Without negative values (``lowest >= 0``)
        the power of ``x`` itself is taken, skipping the ``abs`` and ``copysign`` passes: the
        same values up to the sign of a zero, so the same codes.
        """
        signed = lowest < 0

        def forward_(block: np.ndarray, source: np.ndarray) -> None:
            same = block.dtype == source.dtype  # else the power runs in block's float64
            magnitude = source if same and not signed else np.abs(source, out=block)
            if self.alpha == 0.5:
                np.sqrt(magnitude, out=block)
            else:
                np.power(magnitude, block.dtype.type(self.alpha), out=block)
            if signed:
                np.copysign(block, source, out=block)

        return forward_

    def inverse(self, values: torch.Tensor) -> torch.Tensor:
        """Return ``sign(y) * |y|**(1 / alpha)``."""
        return torch.sign(values) * values.abs() ** (1 / self.alpha)
