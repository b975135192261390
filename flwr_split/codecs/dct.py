"""Orthonormal DCT-II of the last two axes, and its frequency bands.

By matrix products; ``32 x 32`` planes by Lee's fast algorithm (`slfac_lee`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import torch

from flwr_split.codecs.base import CodecError, all_finite
from flwr_split.codecs.slfac_lee import forward_planes, inverse_planes, uses_lee


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


FLOAT32_MAX = float(np.finfo(np.float32).max)

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
def storage_order(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(perm, rank)`` of the coefficients of a large ``H x W`` plane as stored.

    ``perm[j]`` is where band position ``j`` (`band_layout` order) is stored in its plane,
    ``rank`` the inverse: flat ``u * W + v`` for the matrix products, ``v * H + u`` for
    Lee's algorithm (`slfac_lee`, each plane transposed). int64, read-only.
    """
    order = band_layout(height, width)[0].numpy()
    if uses_lee(height, width):
        order = (order % width) * height + order // width
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    order.flags.writeable = rank.flags.writeable = False
    return order, rank


def fresh_buffer(*shape: int) -> torch.Tensor:
    """Return an uninitialized float32 tensor on numpy memory.

    numpy asks the kernel for huge pages on large arrays, so filling a fresh 64 MB buffer
    costs a third of what torch's allocator pays in page faults (`x.clone()`).
    """
    return torch.from_numpy(np.empty(shape, np.float32))


_SCRATCH = threading.local()
SCRATCH_SLOTS = 2
"""Reusable buffers per thread (`scratch`): the transforms use at most two at a time."""


def scratch(slot: int, *shape: int) -> np.ndarray:
    """Return an uninitialized float32 array of ``shape`` on this thread's buffer ``slot``.

    The buffer is kept for the next call with the same slot on the same thread (grown when
    too small), so its pages are not faulted in again: a fresh 64 MB buffer costs about a
    third of ``x.clone()``. The content is valid until the thread asks for ``slot`` again;
    never hand it to a caller. The memory held is, per thread and slot, the largest buffer
    asked for (two 67 MB buffers after a 256x64x32x32 tensor).
    """
    size = math.prod(shape)
    buffers = getattr(_SCRATCH, "buffers", None)
    if buffers is None:
        buffers = _SCRATCH.buffers = [np.empty(0, np.float32)] * SCRATCH_SLOTS
    if buffers[slot].size < size:
        buffers[slot] = np.empty(size, np.float32)
    return buffers[slot][:size].reshape(shape)


def _reused(*shape: int, slot: int = 0) -> torch.Tensor:
    """`scratch` as a torch tensor."""
    return torch.from_numpy(scratch(slot, *shape))


@dataclass(frozen=True)
class Coefficients:
    """DCT-II coefficients of ``(B, C, H, W)`` planes, before any band-order gather.

    Coefficient ``j`` (`band_layout` order) of channel ``c`` of sample ``b`` is
    ``values[b * sample_stride + c * channel_stride + perm[j]]``. Small planes
    (`KRON_MAX_POSITIONS`) are band-ordered and channel-major (``perm`` the identity),
    larger ones in the natural ``(B, C, H * W)`` layout (``perm`` from `storage_order`).
    """

    values: np.ndarray
    """Flat float32 coefficients."""
    shape: tuple[int, int, int]
    """``(C, B, P)``: channels, samples and positions per plane."""
    sample_stride: int
    channel_stride: int
    perm: np.ndarray
    """int64 flat position of each band position."""
    rank: np.ndarray
    """int64 band position of each flat position (``perm`` inverted)."""
    natural: bool
    """Whether planes are stored as the transform leaves them (reading in band order needs
    ``perm``)."""

    @classmethod
    def laid_out(
        cls, values: np.ndarray, shape: tuple[int, int, int], height: int, width: int
    ) -> Coefficients:
        """Wrap the flat ``values`` of ``(C, B, P)`` coefficients of ``H x W`` planes."""
        channels, batch, positions = shape
        if positions <= KRON_MAX_POSITIONS:
            identity = np.arange(positions)
            return cls(values, shape, positions, batch * positions, identity, identity, False)
        perm, rank = storage_order(height, width)
        return cls(values, shape, channels * positions, positions, perm, rank, True)

    @classmethod
    def band_ordered(cls, bands: np.ndarray) -> Coefficients:
        """Wrap `channel_bands`' ``(C, B, P)`` array (any ``P``)."""
        channels, batch, positions = bands.shape
        identity = np.arange(positions)
        return cls(
            bands.reshape(-1), bands.shape, positions, batch * positions, identity, identity, False
        )

    @classmethod
    def empty(cls, shape: tuple[int, int, int], height: int, width: int) -> Coefficients:
        """Return an uninitialized buffer laid out as `coefficients` lays out its result.

        On `scratch` slot 0, so valid until this thread's next transform (for decoding).
        """
        values = scratch(0, math.prod(shape))
        return cls.laid_out(values, shape, height, width)


def coefficients(planes: torch.Tensor, reuse: bool = False) -> Coefficients:
    """Return the DCT-II coefficients of ``(B, C, H, W)`` float32 ``planes`` (`Coefficients`).

    Planes of at most `KRON_MAX_POSITIONS` positions go through one matmul with
    `band_dct_matrix` (its rounding depends on shapes only), larger ones through two 2-D
    matmuls: the second is `dct2`'s broadcast ``matmul``, so the values are those of `dct2`
    bit for bit; ``32 x 32`` planes through Lee's algorithm (`slfac_lee.forward_planes`, each
    plane stored transposed: `storage_order`). Every intermediate lives on numpy memory, on
    this thread's `scratch` slot 1; with ``reuse`` so does the result (slot 0: valid until
    this thread's next transform), else it is fresh (`fresh_buffer`).
    """
    batch, channels, height, width = planes.shape
    positions, count = height * width, batch * channels
    shape = (channels, batch, positions)
    result = _reused if reuse else fresh_buffer
    if positions <= KRON_MAX_POSITIONS:
        turned = _reused(channels, batch, positions, slot=1)
        turned.copy_(planes.reshape(batch, channels, positions).transpose(0, 1))
        out = result(count, positions)
        torch.mm(turned.view(count, positions), band_dct_matrix(height, width).T, out=out)
        return Coefficients.laid_out(out.numpy().reshape(-1), shape, height, width)
    if uses_lee(height, width):
        natural = result(count, positions)
        natural.numpy()[:] = forward_planes(planes.reshape(count, height, width).numpy()).reshape(
            count, positions
        )
    elif height == 1:
        natural = result(count, width)
        torch.mm(planes.reshape(count, width), dct_matrix(width).T, out=natural)
    else:
        rows = _reused(count * height, width, slot=1)
        torch.mm(planes.reshape(count * height, width), dct_matrix(width).T, out=rows)
        natural = result(count, height, width)
        torch.matmul(dct_matrix(height), rows.view(count, height, width), out=natural)
    return Coefficients.laid_out(natural.numpy().reshape(-1), shape, height, width)


def channel_bands(planes: torch.Tensor) -> np.ndarray:
    """Return the DCT-II coefficients of ``(B, C, H, W)`` float32 ``planes``, channel-major.

    The result is a ``(C, B, H * W)`` float32 array whose last axis is in `band_layout`
    order: bit for bit `dct2` followed by a gather, but Lee's algorithm at 32 x 32
    (`coefficients` then, for large planes, one `np.take` per channel, which beats one
    gather into a transposed view); the result is fresh.
    """
    coeffs = coefficients(planes, reuse=planes.shape[-2] * planes.shape[-1] > KRON_MAX_POSITIONS)
    channels, batch, positions = coeffs.shape
    if not coeffs.natural:
        return coeffs.values.reshape(channels, batch, positions)
    natural = coeffs.values.reshape(batch, channels, positions)
    out = np.empty((channels, batch, positions), np.float32)
    for channel in range(channels):
        np.take(natural[:, channel], coeffs.perm, axis=1, out=out[channel], mode="wrap")
    return out


def planes_from_coefficients(coeffs: Coefficients, height: int, width: int) -> torch.Tensor:
    """Invert `coefficients`: fresh ``(B, C, H, W)`` planes, bit for bit `idct2`'s but at 32 x 32.

    ``coeffs`` is laid out as `coefficients` lays out its result (`Coefficients.laid_out`).
    """
    channels, batch, positions = coeffs.shape
    count = batch * channels
    out = fresh_buffer(batch, channels, height, width)
    values = torch.from_numpy(coeffs.values)
    if not coeffs.natural:
        planes = _reused(channels, batch, positions, slot=1)
        torch.mm(
            values.view(count, positions),
            band_dct_matrix(height, width),
            out=planes.view(count, positions),
        )
        out.view(batch, channels, positions).copy_(planes.transpose(0, 1))
        return out
    if uses_lee(height, width):
        out.numpy()[:] = inverse_planes(coeffs.values.reshape(count, height, width)).reshape(
            out.shape
        )
        return out
    if height == 1:
        torch.mm(values.view(count, width), dct_matrix(width), out=out.view(count, width))
        return out
    rows = _reused(count * height, width, slot=1)
    torch.mm(values.view(count * height, width), dct_matrix(width), out=rows)
    torch.matmul(
        dct_matrix(height).T, rows.view(count, height, width), out=out.view(count, height, width)
    )
    return out


def planes_from_channel_bands(coeffs: np.ndarray, height: int, width: int) -> torch.Tensor:
    """Invert `channel_bands`: ``(C, B, H * W)`` coefficients to fresh ``(B, C, H, W)`` planes.

    Bit for bit `idct2` of the planes the band-ordered coefficients come from (at 32 x 32:
    Lee's inverse, `slfac_lee.inverse_planes`).
    """
    channels, batch, positions = coeffs.shape
    target = Coefficients.empty(coeffs.shape, height, width)
    if not target.natural:
        target = replace(target, values=np.ascontiguousarray(coeffs).reshape(-1))
    else:
        natural = target.values.reshape(batch, channels, positions)
        for channel in range(channels):
            np.take(coeffs[channel], target.rank, axis=1, out=natural[:, channel], mode="wrap")
    return planes_from_coefficients(target, height, width)


def dct2_bands(planes: torch.Tensor) -> torch.Tensor:
    """Return the DCT-II coefficients of every ``H x W`` plane in `band_layout` order.

    ``(..., H, W)`` float32 planes give ``(..., H * W)`` coefficients (`channel_bands`
    of the planes as one sample's channels).
    """
    height, width = planes.shape[-2:]
    flat = planes.reshape(1, -1, height, width)
    return torch.from_numpy(channel_bands(flat)).reshape(*planes.shape[:-2], height * width)


def idct2_bands(coeffs: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Invert `dct2_bands`: ``(..., H * W)`` band-ordered coefficients to ``(..., H, W)`` planes."""
    flat = coeffs.reshape(-1, 1, height * width).numpy()
    return planes_from_channel_bands(flat, height, width).reshape(*coeffs.shape[:-1], height, width)


def finite_planes(
    decoded: torch.Tensor, lo: np.ndarray, hi: np.ndarray, positions: int
) -> torch.Tensor:
    """Return inverse-transformed ``decoded`` unless a value overflowed float32.

    Finite but huge ranges in a payload from the network can overflow. ``lo`` and ``hi``
    are the components' ranges (every coefficient lies in one of them, or is zero) and
    ``positions`` the plane's ``H W``. The inverse DCT is orthonormal, so a row of its
    matrix (and of each separable factor) has an L1 norm of at most ``sqrt(H W)``: no
    output, nor any intermediate, exceeds ``sqrt(H W)`` times the largest ``|lo|`` or
    ``|hi|``. Below half of float32's largest value (a margin far wider than the matmuls'
    rounding) the values are finite without a pass over them. Lee's inverse (`slfac_lee`,
    32 x 32) stays within the same bound: each value of one 32-point pass is at most 5.15
    times the pass's largest input, so below 26.5 times the largest ``|lo|`` or ``|hi|``
    over both passes (tests/codecs/test_slfac_lee.py).
    """
    largest = max(float(np.abs(lo).max(initial=0.0)), float(np.abs(hi).max(initial=0.0)))
    if 2 * largest * math.sqrt(positions) < FLOAT32_MAX:
        return decoded
    if not all_finite(decoded):
        raise CodecError("decoded values overflow float32")
    return decoded
