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
    return quantize_(values.to(torch.float64, copy=True), lo, hi, levels, noise).to(torch.int64)


def quantize_(
    values: torch.Tensor,
    lo: torch.Tensor | float,
    hi: torch.Tensor | float,
    levels: torch.Tensor | float,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """In-place `quantize`: overwrite ``values`` with their codes, as float64, and return it.

    ``values`` must have the full broadcast shape; no temporary of its size is made.
    """
    lo, hi, levels = (torch.as_tensor(t, dtype=torch.float64) for t in (lo, hi, levels))
    span = hi - lo
    flat = span == 0
    values.sub_(lo).div_(torch.where(flat, 1.0, span / levels))
    if noise is not None:
        values.add_(noise).floor_()
    else:
        values.round_()
    # where hi == lo every value is lo, so it is 0 here already; the upper bound 0 makes sure
    return values.clamp_(torch.zeros((), dtype=torch.float64), torch.where(flat, 0.0, levels))


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
