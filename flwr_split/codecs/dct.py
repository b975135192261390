"""Orthonormal DCT-II of the last two axes by matrix products, and its frequency bands."""

from __future__ import annotations

import math
from functools import lru_cache

import torch


@lru_cache(maxsize=32)
def dct_matrix(n: int) -> torch.Tensor:
    """Return the orthonormal DCT-II matrix ``D`` of size ``n x n`` (float32).

    ``D[u, i] = a(u) * cos(pi * (2i + 1) * u / (2n))`` with ``a(0) = sqrt(1/n)``
    and ``a(u > 0) = sqrt(2/n)``, so ``D @ D.T = I``. Built in float64, stored
    read-only in float32; a pure function of ``n`` (cached).
    """
    u = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    matrix = torch.cos(math.pi * (2 * i + 1) * u / (2 * n)) * math.sqrt(2 / n)
    matrix[0] /= math.sqrt(2)
    return matrix.to(torch.float32)


def dct2(planes: torch.Tensor) -> torch.Tensor:
    """Return ``D_H @ X @ D_W.T`` for every ``H x W`` plane of ``planes`` (``(..., H, W)``)."""
    height, width = planes.shape[-2:]
    out = planes @ dct_matrix(width).T
    return out if height == 1 else dct_matrix(height) @ out


def idct2(coeffs: torch.Tensor) -> torch.Tensor:
    """Invert `dct2`: ``D_H.T @ X @ D_W`` for every plane of ``coeffs``."""
    height, width = coeffs.shape[-2:]
    out = coeffs @ dct_matrix(width)
    return out if height == 1 else dct_matrix(height).T @ out


@lru_cache(maxsize=32)
def band_layout(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(order, band, prefix)`` of the diagonal frequency bands of an ``H x W`` grid.

    Position ``(u, v)`` (flat index ``u * W + v``) lies in band ``u + v``.

    Returns
    -------
    order : torch.Tensor
        int64 flat positions sorted by ``(u + v, u)``.
    band : torch.Tensor
        int64 band of each position of ``order`` (non-decreasing).
    prefix : torch.Tensor
        int64 ``P(r)``: the number of positions in bands ``0..r``, for
        ``r = 0..H+W-2``.
    """
    u = torch.arange(height).repeat_interleave(width)
    v = torch.arange(width).repeat(height)
    order = torch.argsort((u + v) * max(height, 1) + u)
    band = (u + v)[order]
    prefix = torch.cumsum(torch.bincount(band, minlength=max(height + width - 1, 0)), 0)
    return order, band, prefix
