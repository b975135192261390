"""A ResNet-18 for 3x32x32 images (CIFAR-10), cut after the stem and the first BasicBlock.

The CIFAR variant of He et al. (2016): a 3x3 stem without max-pool, four stages
of two BasicBlocks (64, 128, 256, 512 channels; stages 2-4 halve the
resolution), global average pooling and one linear layer; 11.2 M parameters.
The client runs the stem and the first BasicBlock, the server the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import pairwise

import torch
from torch import nn

from flwr_split.tasks.models.pixels import Pixels

RESNET_CUTS = {1: "after the stem and BasicBlock 1 (64x32x32)"}
"""Valid cut values and what the client sends at each."""
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
STAGES = (64, 128, 256, 512)
"""Channels of the four stages."""

Norm = Callable[[int], nn.Module]


def group_norm_32(channels: int) -> nn.Module:
    """GroupNorm with 32 groups: a per-sample normalization for client-side blocks."""
    return nn.GroupNorm(32, channels)


def conv3x3(inputs: int, outputs: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a norm layer follows)."""
    return nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv + norm layers and a shortcut, ReLU after the sum.

    Parameters
    ----------
    inputs : int
        Input channels.
    outputs : int
        Output channels.
    stride : int (default: 1)
        Stride of the first convolution; the shortcut is a strided 1x1
        convolution + norm when the stride or the channels change, else the identity.
    norm : Callable[[int], nn.Module] (default: nn.BatchNorm2d)
        Norm layer for a number of channels.
    """

    def __init__(
        self, inputs: int, outputs: int, stride: int = 1, norm: Norm = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv3x3(inputs, outputs, stride),
            norm(outputs),
            nn.ReLU(inplace=True),
            conv3x3(outputs, outputs),
            norm(outputs),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or inputs != outputs:
            self.shortcut = nn.Sequential(
                nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False), norm(outputs)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``relu(body(x) + shortcut(x))``."""
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """The unsplit ResNet-18 for 3x32x32 pixel images; `blocks` cuts it for split learning.

    Parameters
    ----------
    num_classes : int (default: 10)
        Number of classes.
    group_norm : bool (default: False)
        GroupNorm (32 groups) instead of BatchNorm in the client's part (the
        stem and the first BasicBlock), so it computes the same per sample
        whatever the local batch size.
    mean, std : Sequence[float] (default: CIFAR-10's)
        Per-channel pixel statistics for the input layer (`Pixels`).
    """

    def __init__(
        self,
        num_classes: int = 10,
        group_norm: bool = False,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
    ) -> None:
        super().__init__()
        client_norm: Norm = group_norm_32 if group_norm else nn.BatchNorm2d
        width = STAGES[0]
        self.stem = nn.Sequential(
            Pixels(mean, std), conv3x3(3, width), client_norm(width), nn.ReLU(inplace=True)
        )
        stages = [
            nn.Sequential(BasicBlock(width, width, norm=client_norm), BasicBlock(width, width))
        ]
        for inputs, outputs in pairwise(STAGES):
            stages.append(
                nn.Sequential(BasicBlock(inputs, outputs, stride=2), BasicBlock(outputs, outputs))
            )
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(STAGES[-1], num_classes)
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return the logits of ``(batch, 3, 32, 32)`` pixel images."""
        x = self.layer1(self.stem(pixels))
        return self.head(self.layer4(self.layer3(self.layer2(x))))

    def blocks(self) -> list[nn.Module]:
        """Return the model as two blocks sharing its modules: the client's and the server's."""
        return [
            nn.Sequential(self.stem, self.layer1[0]),
            nn.Sequential(self.layer1[1], self.layer2, self.layer3, self.layer4, self.head),
        ]


def resnet18(num_classes: int = 10, group_norm: bool = False) -> list[nn.Module]:
    """Return `ResNet18` as its block list (`ResNet18.blocks`) for `split_layers`."""
    return ResNet18(num_classes, group_norm).blocks()
