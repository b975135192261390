"""`SplitTask`: everything that makes a split-learning task, in one frozen record."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from flwr.app import Context
from torch import nn

from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.tasks.objectives import (
    CLASSIFICATION_LOSS,
    CLASSIFICATION_METRICS,
    LossFn,
    MetricFn,
)
from flwr_split.tasks.targets import Classes, Target, Values

if TYPE_CHECKING:
    from flwr_split.tasks.config import TaskConfig

ModelFactory = Callable[["TaskConfig"], tuple[nn.Module, nn.Module]]
"""``model(config) -> (bottom, top)``, called under a torch seed set from ``config.seed``."""
PartitionLoader = Callable[[Context, "TaskConfig"], tuple[LabeledArrays, LabeledArrays]]
"""``load_partition(context, config) -> (train, test)``: this node's own data (client side)."""
OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
"""``optimizer(params) -> torch.optim.Optimizer``."""
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]
"""``scheduler(optimizer) -> LRScheduler``, stepped after every optimizer step."""


@dataclass(frozen=True)
class SplitTask:
    """A split-learning task: the model pair, the clients' data, the objective.

    Parameters
    ----------
    name : str
        Registry name; `TaskConfig.task` refers to it.
    model : ModelFactory
        ``model(config) -> (bottom, top)``: the client's and the server's half,
        built for ``config.cut`` (`split_layers` cuts a layer list). It runs
        under ``torch.manual_seed(config.seed)``, so every process builds the
        same initial weights.
    load_partition : PartitionLoader
        ``load_partition(context, config) -> (train, test)``, run on the client
        only: this node's samples as `LabeledArrays` (inputs of any shape and
        dtype, first axis the samples). `load_npz` reads a node's own file.
    target : Classes or Values
        What the top predicts: integer labels of ``Classes(num_classes)`` or
        float32 targets of ``Values(shape)``.
    loss : LossFn (default: cross-entropy)
        ``loss(outputs, targets)``, the mean over the batch.
    metrics : Mapping[str, MetricFn] (default: ``{"accuracy": accuracy}``)
        Evaluation metrics by name, each a mean over the batch.
    optimizer : OptimizerFactory or None (default: None)
        ``optimizer(params)`` for the top and the bottoms; None uses the run's
        `OptimizerConfig`.
    scheduler : SchedulerFactory or None (default: None)
        ``scheduler(optimizer)``, stepped after every optimizer step of the top
        and of each bottom; its state travels in the client's ``context.state``.
    cuts : Mapping[int, str] or None (default: None)
        Valid ``TaskConfig.cut`` values with a description; None accepts any cut >= 1.
    partitioners : tuple[str, ...] or None (default: None)
        ``TaskConfig.partitioner`` values the loader understands; None accepts any.
    channel_maps : bool (default: False)
        The model factory honours ``TaskConfig.channels_last`` (its cut-layer
        output is a ``(channels, *spatial)`` map it can send channels last).
    downloads : tuple[str, ...] (default: ())
        ``host:port`` addresses the loader fetches data from when it has no
        local copy; a client that cannot reach one answers with an error at
        once (`flwr_split.tasks.downloads`).
    """

    name: str
    model: ModelFactory
    load_partition: PartitionLoader
    target: Target
    loss: LossFn = CLASSIFICATION_LOSS
    metrics: Mapping[str, MetricFn] = field(default_factory=lambda: dict(CLASSIFICATION_METRICS))
    optimizer: OptimizerFactory | None = None
    scheduler: SchedulerFactory | None = None
    cuts: Mapping[int, str] | None = None
    partitioners: tuple[str, ...] | None = None
    channel_maps: bool = False
    downloads: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a task name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.target, (Classes, Values)):
            raise TypeError(f"target must be Classes or Values, got {self.target!r}")

    @property
    def num_classes(self) -> int | None:
        """Number of classes of a classification task, None for regression."""
        return self.target.num_classes if isinstance(self.target, Classes) else None
