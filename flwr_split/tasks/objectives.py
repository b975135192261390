"""Loss and metric functions of a task: what the server's top is trained and judged by.

A loss is ``loss(outputs, targets) -> scalar tensor`` (mean over the batch); a
metric is ``metric(outputs, targets) -> scalar tensor`` (mean over the batch,
so metrics of batches combine by sample-weighted means).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MetricFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of samples whose largest logit is the label's."""
    return (logits.argmax(1) == labels).float().mean()


CLASSIFICATION_LOSS: LossFn = nn.functional.cross_entropy
"""Default loss: mean cross-entropy of logits against integer labels."""
CLASSIFICATION_METRICS: Mapping[str, MetricFn] = {"accuracy": accuracy}
"""Default metrics of a classification task."""
