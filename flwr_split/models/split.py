"""Cut a layer list into the client's bottom and the server's top."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def split_layers(layers: Sequence[nn.Module], cut: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Return ``(bottom, top)``: layers ``[:cut]`` on the client, ``[cut:]`` on the server.

    Parameters
    ----------
    layers : Sequence[nn.Module]
        The whole model as an ordered list of layers.
    cut : int
        Number of layers on the client side, ``1 <= cut < len(layers)``.

    Returns
    -------
    tuple[nn.Sequential, nn.Sequential]
        The bottom and the top model.
    """
    if not 1 <= cut < len(layers):
        raise ValueError(f"cut must be in [1, {len(layers) - 1}], got {cut}")
    return nn.Sequential(*layers[:cut]), nn.Sequential(*layers[cut:])


def norm_layer(channels: int, group_norm: bool) -> list[nn.Module]:
    """Return ``[GroupNorm(min(32, channels), channels)]`` if ``group_norm``, else ``[]``.

    GroupNorm normalizes each sample on its own, so a client-side block gives
    the same output whatever the local batch size (global sampling sends
    batches of 1), unlike BatchNorm.
    """
    return [nn.GroupNorm(min(32, channels), channels)] if group_norm else []
