"""A LeNet-style CNN for 1x28x28 images (MNIST, Fashion-MNIST), cut after its first conv block.

LeNet-5's layout (LeCun et al. 1998) with ReLU, max-pooling and twice its
convolution widths (16 and 32 instead of 6 and 16, for Fashion-MNIST's sake:
docs/datasets.md), then 120, 84 and the classes. Split-learning papers on MNIST
cut such a network after the first convolution block.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from flwr_split.tasks.models.pixels import Pixels
from flwr_split.tasks.models.split import norm_layer

LENET_CUTS = {1: "after conv1+ReLU+pool (16x14x14)", 2: "after conv2+ReLU+pool (32x5x5)"}
"""Valid cut values and what the client sends at each."""
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)


def lenet(
    num_classes: int = 10,
    group_norm: bool = False,
    mean: Sequence[float] = MNIST_MEAN,
    std: Sequence[float] = MNIST_STD,
) -> list[nn.Module]:
    """Return the LeNet-style CNN as a list of blocks.

    Block 1 scales the uint8 pixels (`Pixels`), then conv(1->16, 5x5, pad 2)
    + ReLU + 2x2 max-pool (cut 1 sends 16x14x14 = 3,136 floats per sample);
    block 2 is conv(16->32, 5x5) + ReLU + 2x2 max-pool (cut 2 sends 32x5x5 =
    800); the head is Linear(800, 120), Linear(120, 84), Linear(84, classes)
    with ReLUs. With ``group_norm``, block 1 normalizes its conv output with
    GroupNorm (16 groups).

    Parameters
    ----------
    num_classes : int (default: 10)
        Number of classes.
    group_norm : bool (default: False)
        GroupNorm after the first convolution (client side).
    mean, std : Sequence[float] (default: MNIST's)
        Pixel statistics of the data set for the input layer.
    """
    return [
        nn.Sequential(
            Pixels(mean, std),
            nn.Conv2d(1, 16, 5, padding=2),
            *norm_layer(16, group_norm),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ),
        nn.Sequential(nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2)),
        nn.Sequential(
            nn.Flatten(),
            nn.Linear(32 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        ),
    ]
