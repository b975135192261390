"""A small 1-D CNN for MNIST-1D, as a layer list with cut points after ReLU blocks."""

from __future__ import annotations

from torch import nn

from flwr_split.tasks.models.split import norm_layer

MNIST1D_CUTS = {1: "after conv1+ReLU (32x40)", 2: "after conv2+ReLU (32x20)"}
"""Valid cut values and what the client sends at each."""


def mnist1d_cnn(num_classes: int = 10, group_norm: bool = False) -> list[nn.Module]:
    """Return the MNIST-1D CNN as a list of blocks.

    Block 1 is conv(1->32, k5)+ReLU (cut 1 sends 32x40 = 1,280 floats per
    sample); block 2 is conv(32->32, k3, stride 2)+ReLU (cut 2 sends 32x20 =
    640); block 3 is one more strided conv+ReLU, then the linear head. With
    ``group_norm``, block 1 normalizes its conv output with GroupNorm (32 groups).
    """
    return [
        nn.Sequential(nn.Conv1d(1, 32, 5, padding=2), *norm_layer(32, group_norm), nn.ReLU()),
        nn.Sequential(nn.Conv1d(32, 32, 3, stride=2, padding=1), nn.ReLU()),
        nn.Sequential(
            nn.Conv1d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 10, num_classes),
        ),
    ]
