"""Min-max uniform dequantization, shared by the quantizing codecs' decoding tables.

Codes, bounds and level counts are float64 tensors that broadcast against each
other. Quantization itself is `flwr_split.codecs.blocks.quantize_blocks`.
"""

from __future__ import annotations

import torch


def dequantize(
    codes: torch.Tensor,
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
    levels: torch.Tensor | float,
) -> torch.Tensor:
    """Return ``lo + codes * (hi - lo) / levels`` clipped to ``[lo, hi]``, as float64.

    Parameters
    ----------
    codes : torch.Tensor
        Integer codes in ``[0, levels]``.
    lo, hi, levels : torch.Tensor or float
        The grid the codes were quantized on (broadcast against ``codes``).

    Returns
    -------
    torch.Tensor
        The float64 reconstruction; exactly ``lo`` where ``hi == lo``.
    """
    return dequantize_(codes.to(torch.float64), lo, hi, levels)


def dequantize_(
    codes: torch.Tensor,
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
    levels: torch.Tensor | float,
) -> torch.Tensor:
    """In-place `dequantize` of float64 ``codes`` (full broadcast shape); return it."""
    lo, hi, levels = (torch.as_tensor(t, dtype=torch.float64) for t in (lo, hi, levels))
    return codes.mul_((hi - lo) / levels).add_(lo).clamp_(lo, hi)
