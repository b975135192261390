"""A small CNN for 8x8 digits, as a layer list with cut points after ReLU blocks."""

from __future__ import annotations

from torch import nn

from flwr_split.tasks.models.split import norm_layer

DIGITS_CUTS = {1: "after conv1+ReLU (16x8x8)", 2: "after conv2+ReLU+pool (32x4x4)"}
"""Valid cut values and what the client sends at each."""


def digits_cnn(num_classes: int = 10, group_norm: bool = False) -> list[nn.Module]:
    """Return the digits CNN as a list of blocks.

    Block 1 is conv(1->16, 3x3)+ReLU (cut 1 sends 16x8x8 = 1,024 floats per
    sample); block 2 is conv(16->32, 3x3)+ReLU+2x2 max-pool (cut 2 sends
    32x4x4 = 512); the head flattens and classifies. With ``group_norm``,
    block 1 normalizes its conv output with GroupNorm (16 groups).
    """
    return [
        nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), *norm_layer(16, group_norm), nn.ReLU()),
        nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, num_classes)
        ),
    ]
