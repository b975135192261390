"""Min-max uniform quantization arithmetic, shared by the quantizing codecs.

Values, bounds and level counts are float64 tensors that broadcast against
each other, so one call quantizes a whole tensor or many components at once.
"""

from __future__ import annotations

import torch


def quantize(
    values: torch.Tensor,
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
    levels: torch.Tensor | float,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Return the codes of ``values`` on the grid ``lo + code * (hi - lo) / levels``.

    Parameters
    ----------
    values : torch.Tensor
        float64 values, each within its ``[lo, hi]``.
    lo, hi : torch.Tensor or float
        Bounds of the grid (broadcast against ``values``).
    levels : torch.Tensor or float
        Largest code, ``2**bits - 1`` (broadcast against ``values``).
    noise : torch.Tensor, optional
        ``U[0, 1)`` draws, one per value: stochastic rounding
        ``floor(scaled + noise)`` (unbiased). Without it, round half to even.

    Returns
    -------
    torch.Tensor
        int64 codes in ``[0, levels]``; all zero where ``hi == lo``.
    """
    lo, hi, levels = (torch.as_tensor(t, dtype=torch.float64) for t in (lo, hi, levels))
    span = hi - lo
    flat = span == 0
    scaled = (values - lo) / torch.where(flat, 1.0, span / levels)
    rounded = torch.floor(scaled + noise) if noise is not None else torch.round(scaled)
    rounded = torch.where(flat, 0.0, rounded).clamp_(min=0)
    return torch.minimum(rounded, levels).to(torch.int64)


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
        The grid `quantize` used (broadcast against ``codes``).

    Returns
    -------
    torch.Tensor
        The float64 reconstruction; exactly ``lo`` where ``hi == lo``.
    """
    lo, hi, levels = (torch.as_tensor(t, dtype=torch.float64) for t in (lo, hi, levels))
    values = lo + codes.to(torch.float64) * ((hi - lo) / levels)
    return torch.minimum(torch.maximum(values, lo), hi)
