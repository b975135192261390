"""Shared cases of the SL-FAC tests: inputs, band energies, the wire stream and its size."""

import math

import torch

from flwr_split.codecs import CodecContext
from flwr_split.codecs.dct import (
    band_layout,
    dct2_bands,
)
from flwr_split.codecs.slfac import SLFAC, planes_shape


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def smooth(batch: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    """Bilinearly upsampled noise: most energy in the low frequencies."""
    coarse = randn(batch, channels, 3, 3, seed=seed)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")


def band_energy(x: torch.Tensor) -> torch.Tensor:
    """Band energies per channel, pooled over the batch (channels x bands)."""
    _, channels, height, width = x.shape
    _, band, _ = band_layout(height, width)
    coeffs = dct2_bands(x).double()
    energy = torch.zeros(channels, height + width - 1, dtype=torch.float64)
    return energy.index_add_(1, band, coeffs.square().sum(0))


def wire_stream(x: torch.Tensor, cutoffs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 coefficients in wire order and their components, channel by channel.

    Components ``L_0, H_0, L_1, ...``; each runs over samples, then band positions.
    """
    batch, channels, height, width = planes_shape(tuple(x.shape))
    prefix = band_layout(height, width)[2]
    coeffs = dct2_bands(x.reshape(batch, channels, height, width)).double()
    low = prefix[cutoffs].expand(channels).tolist()
    parts = [
        part
        for c in range(channels)
        for part in (coeffs[:, c, : low[c]].reshape(-1), coeffs[:, c, low[c] :].reshape(-1))
    ]
    component = torch.arange(2 * channels).repeat_interleave(
        torch.tensor([p.numel() for p in parts])
    )
    return torch.cat(parts), component


def formula_nbytes(codec: SLFAC, x: torch.Tensor) -> int:
    """Spec section 3 without its 16-byte header (the shape travels in meta)."""
    quantized = codec.quantize(x, CodecContext())
    batch, channels, height, width = planes_shape(tuple(x.shape))
    prefix = band_layout(height, width)[2]
    low = prefix[quantized.cutoffs].expand(channels)
    total = 2 * quantized.cutoffs.numel()
    for c in range(channels):
        for n, bits in (
            (batch * int(low[c]), int(quantized.bits[2 * c])),
            (batch * (height * width - int(low[c])), int(quantized.bits[2 * c + 1])),
        ):
            if n:
                total += 1 + (8 + math.ceil(n * bits / 8) if bits else 0)
    return total
