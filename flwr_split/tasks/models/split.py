"""Cut a layer list into the client's bottom and the server's top."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MoveChannelAxis(nn.Module):
    """Move the channel axis of a ``(batch, channels, *spatial)`` map last, or back.

    Parameters
    ----------
    last : bool
        True: ``(batch, channels, *spatial)`` to ``(batch, *spatial, channels)``
        (contiguous, so each position's channel vector is one run of memory);
        False: the inverse.
    """

    def __init__(self, last: bool) -> None:
        super().__init__()
        self.last = last

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        """Return ``maps`` with the channel axis moved."""
        source, destination = (1, -1) if self.last else (-1, 1)
        return maps.movedim(source, destination).contiguous()

    def extra_repr(self) -> str:
        """Name the direction in the module's printout."""
        return f"last={self.last}"


def split_layers(
    layers: Sequence[nn.Module], cut: int, channels_last: bool = False
) -> tuple[nn.Sequential, nn.Sequential]:
    """Return ``(bottom, top)``: layers ``[:cut]`` on the client, ``[cut:]`` on the server.

    Parameters
    ----------
    layers : Sequence[nn.Module]
        The whole model as an ordered list of layers.
    cut : int
        Number of layers on the client side, ``1 <= cut < len(layers)``.
    channels_last : bool (default: False)
        Send the cut-layer maps channels last: the bottom ends by moving the
        channel axis of its ``(batch, channels, *spatial)`` output last and the
        top starts by moving it back, so the model computes the same function
        and only the layout of the activations on the wire changes.

    Returns
    -------
    tuple[nn.Sequential, nn.Sequential]
        The bottom and the top model.
    """
    if not 1 <= cut < len(layers):
        raise ValueError(f"cut must be in [1, {len(layers) - 1}], got {cut}")
    bottom, top = list(layers[:cut]), list(layers[cut:])
    if channels_last:
        bottom.append(MoveChannelAxis(last=True))
        top.insert(0, MoveChannelAxis(last=False))
    return nn.Sequential(*bottom), nn.Sequential(*top)


def norm_layer(channels: int, group_norm: bool) -> list[nn.Module]:
    """Return ``[GroupNorm(min(32, channels), channels)]`` if ``group_norm``, else ``[]``.

    GroupNorm normalizes each sample on its own, so a client-side block gives
    the same output whatever the local batch size (global sampling sends
    batches of 1), unlike BatchNorm.
    """
    return [nn.GroupNorm(min(32, channels), channels)] if group_norm else []
