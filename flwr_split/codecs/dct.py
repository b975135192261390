"""Orthonormal DCT-II of the last two axes by matrix products, and its frequency bands."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
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


KRON_MAX_POSITIONS = 256
"""Planes of at most this many positions are transformed by one matmul (`band_dct_matrix`);
larger ones separably (`dct2` / `idct2`), where the Kronecker product would cost ``(H W)^2``
per plane against ``H W (H + W)``."""


@lru_cache(maxsize=32)
def band_dct_matrix(height: int, width: int) -> torch.Tensor:
    """Return the ``(H W, H W)`` 2-D DCT-II matrix with its rows in `band_layout` order (float32).

    Row ``i`` is the basis of coefficient ``order[i]``: ``kron(D_H, D_W)[order]``,
    built in float64. Orthonormal, so its transpose inverts it.
    """
    full = torch.kron(dct_matrix(height).double(), dct_matrix(width).double())
    return full[band_layout(height, width)[0]].to(torch.float32)


@lru_cache(maxsize=32)
def band_gathers(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the gathers into and out of `band_layout` order used by the separable path.

    Returns
    -------
    turned : np.ndarray
        int64 flat index, in a transposed ``W x H`` plane (``(u, v)`` at ``v * H + u``),
        of each band position.
    rank : np.ndarray
        int64 band position of each flat ``u * W + v`` of an ``H x W`` plane.
    """
    order = band_layout(height, width)[0].numpy()
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return (order % width) * height + order // width, rank


def dct2_bands(planes: torch.Tensor) -> torch.Tensor:
    """Return the DCT-II coefficients of every ``H x W`` plane in `band_layout` order.

    ``(..., H, W)`` float32 planes give ``(..., H * W)`` coefficients, the same
    values as `dct2` followed by a gather (bit for bit on the separable path, whose
    matrix products are those of `dct2` with the second one transposed). Large planes
    go through two 2-D matmuls (rows by ``D_W``, then the transposed planes by ``D_H``)
    and one gather of the transposed planes into band order: no batched small matmuls.
    """
    height, width = planes.shape[-2:]
    positions = height * width
    shape = (*planes.shape[:-2], positions)
    if positions <= KRON_MAX_POSITIONS:  # one 2-D matmul: its rounding depends on shapes only
        return (planes.reshape(-1, positions) @ band_dct_matrix(height, width).T).reshape(shape)
    count = math.prod(shape[:-1])
    rows = planes.reshape(count * height, width) @ dct_matrix(width).T
    if height == 1:  # band order of a single row is the identity
        return rows.reshape(shape)
    turned = rows.view(count, height, width).transpose(1, 2).reshape(count * width, height)
    coeffs = (turned @ dct_matrix(height).T).view(count, positions).numpy()
    order = band_gathers(height, width)[0]
    return torch.from_numpy(np.take(coeffs, order, axis=1)).reshape(shape)


def idct2_bands(coeffs: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Invert `dct2_bands`: ``(..., H * W)`` band-ordered coefficients to ``(..., H, W)`` planes.

    Large planes come back as a view of transposed planes (not contiguous), so a caller
    that permutes the leading axes pays a single copy.
    """
    positions = height * width
    shape = (*coeffs.shape[:-1], height, width)
    count = math.prod(shape[:-2])
    flat = coeffs.reshape(count, positions)
    if positions <= KRON_MAX_POSITIONS:
        return (flat @ band_dct_matrix(height, width)).reshape(shape)
    if height == 1:
        return (flat @ dct_matrix(width)).reshape(shape)
    planes = torch.from_numpy(np.take(flat.numpy(), band_gathers(height, width)[1], axis=1))
    rows = planes.view(count * height, width) @ dct_matrix(width)
    turned = rows.view(count, height, width).transpose(1, 2).reshape(count * width, height)
    return (turned @ dct_matrix(height)).view(*shape[:-2], width, height).transpose(-1, -2)
