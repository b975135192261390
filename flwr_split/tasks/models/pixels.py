"""The first layer of the image models: pixel values (e.g. uint8) to standardized floats."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class Pixels(nn.Module):
    """Scale pixel values in ``[0, 255]`` to ``[0, 1]`` and standardize every channel.

    The data stay uint8 on the clients (a quarter of float32's memory); this
    layer, the bottom's first, returns ``(x / 255 - mean) / std`` in float32.
    ``mean`` and ``std`` are constants, not part of the model's state.

    Parameters
    ----------
    mean : Sequence[float]
        Per-channel mean of the data set's pixels in ``[0, 1]``.
    std : Sequence[float]
        Per-channel standard deviation of the data set's pixels in ``[0, 1]``.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or min(std) <= 0:
            raise ValueError(f"need one positive std per mean, got {mean!r} and {std!r}")
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return the standardized float32 images of ``(batch, channels, height, width)`` pixels."""
        return (pixels.to(self.mean.dtype) / 255.0 - self.mean) / self.std
