"""The built-in tasks (digits, mnist, cifar10, shakespeare, ...), registered through the public API.

Each is a `SplitTask` whose model cuts a layer list (`split_layers`) and whose
client-side loader is a `SharedDataset`: one data set split over the nodes by
``partition-id`` / ``num-partitions`` (or, with ``data-path`` in the node config,
the node's own ``.npz`` file instead). CIFAR-10's loader (`load_cifar10`) asks
flwr-datasets for the node's partition alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
from flwr.app import Context
from torch import nn

from flwr_split.tasks.config import TaskConfig
from flwr_split.tasks.data import shakespeare
from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.tasks.data.cifar10 import cifar10_source, load_cifar10_partition
from flwr_split.tasks.data.digits import load_digits_split
from flwr_split.tasks.data.fashion_mnist import load_fashion_mnist
from flwr_split.tasks.data.mnist import load_mnist
from flwr_split.tasks.data.mnist1d import load_mnist1d_split
from flwr_split.tasks.data.partition import (
    NATURAL,
    PARTITION_SCHEMES,
    group_partition,
    partition_indices,
)
from flwr_split.tasks.model import cut_shape
from flwr_split.tasks.models.char_lstm import LEAF_HIDDEN, char_lstm, char_lstm_cuts
from flwr_split.tasks.models.digits import DIGITS_CUTS, digits_cnn
from flwr_split.tasks.models.lenet import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    LENET_CUTS,
    lenet,
)
from flwr_split.tasks.models.mnist1d import MNIST1D_CUTS, mnist1d_cnn
from flwr_split.tasks.models.resnet import RESNET_CUTS, resnet18
from flwr_split.tasks.models.split import split_layers
from flwr_split.tasks.node import own_file_or_partition
from flwr_split.tasks.registry import register_task
from flwr_split.tasks.targets import Classes
from flwr_split.tasks.task import SplitTask

Split = tuple[LabeledArrays, LabeledArrays]


@dataclass(frozen=True)
class SharedDataset:
    """A whole data set split over the nodes: the built-in tasks' ``load_partition``.

    Parameters
    ----------
    load : Callable[[float, int], tuple[LabeledArrays, LabeledArrays]]
        ``load(test_fraction, seed)`` returns the whole ``(train, test)``.
    natural_groups : Callable[[float, int], np.ndarray] or None (default: None)
        ``natural_groups(test_fraction, seed)`` returns the natural group (e.g.
        speaking role) of every training sample, for ``partitioner="natural"``.
    """

    load: Callable[[float, int], Split]
    natural_groups: Callable[[float, int], np.ndarray] | None = None

    def __call__(self, context: Context, config: TaskConfig) -> Split:
        """Return this node's ``(train, test)``: its ``data-path`` file or its partition."""
        return own_file_or_partition(context, partial(client_data, config))

    @property
    def partitioners(self) -> tuple[str, ...]:
        """Partitioner names this data set supports."""
        return (*PARTITION_SCHEMES, NATURAL) if self.natural_groups else PARTITION_SCHEMES


def fixed_split(load: Callable[[], Split]) -> Callable[[float, int], Split]:
    """Return a `SharedDataset` loader of a data set with its own test set.

    ``load()`` returns the fixed ``(train, test)``; the loader ignores
    ``test_fraction`` and ``seed`` (the split is the data set's).
    """

    def split(test_fraction: float, seed: int) -> Split:
        return load()

    return split


def _shared(config: TaskConfig) -> SharedDataset:
    loader = config.definition.load_partition
    if not isinstance(loader, SharedDataset):
        raise ValueError(f"task {config.task!r} does not load a shared data set")
    return loader


@lru_cache(maxsize=8)
def load_task_data(config: TaskConfig) -> Split:
    """Return the whole ``(train, test)`` data of a built-in task (client-side helper)."""
    return _shared(config).load(config.test_fraction, config.seed)


@lru_cache(maxsize=8)
def _partitions(
    config: TaskConfig, num_partitions: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    train, test = load_task_data(config)
    natural_groups = _shared(config).natural_groups
    if config.partitioner == NATURAL and natural_groups is not None:
        groups = natural_groups(config.test_fraction, config.seed)
        train_parts = group_partition(groups, num_partitions, config.seed)
    else:
        train_parts = partition_indices(
            train.y,
            num_partitions,
            config.partitioner,
            config.dirichlet_alpha,
            config.seed,
            classes_per_client=config.classes_per_client,
        )
    test_order = np.random.default_rng([config.seed, 1]).permutation(len(test))
    test_parts = [np.sort(part) for part in np.array_split(test_order, num_partitions)]
    return train_parts, test_parts


def client_data(config: TaskConfig, partition_id: int, num_partitions: int) -> Split:
    """Return the ``(train, test)`` samples of partition ``partition_id`` of a built-in task."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition_id {partition_id} not in [0, {num_partitions})")
    train, test = load_task_data(config)
    train_parts, test_parts = _partitions(config, num_partitions)
    return train.subset(train_parts[partition_id]), test.subset(test_parts[partition_id])


def builtin_cut_shape(config: TaskConfig) -> tuple[int, ...]:
    """Return the cut-layer shape of a built-in task from its inputs (reads its data).

    For benchmarks and tests; the server learns the input shape from the
    clients' hello replies instead.
    """
    x = load_task_data(config)[0].x
    return cut_shape(config, x.shape[1:], x.dtype.name)


def layer_model(
    layers: Callable[..., list[nn.Module]], num_classes: int
) -> Callable[[TaskConfig], tuple[nn.Sequential, nn.Sequential]]:
    """Return a model factory cutting ``layers(num_classes, group_norm=...)`` at ``config.cut``."""

    def model(config: TaskConfig) -> tuple[nn.Sequential, nn.Sequential]:
        whole = layers(num_classes, group_norm=config.group_norm)
        return split_layers(whole, config.cut, channels_last=config.channels_last)

    return model


def load_cifar10(context: Context, config: TaskConfig) -> Split:
    """Return this node's CIFAR-10 ``(train, test)``: its ``data-path`` file or its partition.

    The partition comes from flwr-datasets (`load_cifar10_partition`) with the
    config's partitioner; ``test_fraction`` is ignored (CIFAR-10 has its own test set).
    """
    return own_file_or_partition(
        context,
        partial(
            load_cifar10_partition,
            scheme=config.partitioner,
            alpha=config.dirichlet_alpha,
            classes_per_client=config.classes_per_client,
            seed=config.seed,
            source=cifar10_source(),
        ),
    )


def builtin_task(
    name: str,
    data: SharedDataset | Callable[[Context, TaskConfig], Split],
    layers: Callable[..., list[nn.Module]],
    num_classes: int,
    cuts: dict[int, str],
    channel_maps: bool = True,
    downloads: tuple[str, ...] = (),
) -> SplitTask:
    """Return a classification `SplitTask` over a data loader and a layer list."""
    return SplitTask(
        name,
        model=layer_model(layers, num_classes),
        load_partition=data,
        target=Classes(num_classes),
        cuts=cuts,
        partitioners=data.partitioners if isinstance(data, SharedDataset) else PARTITION_SCHEMES,
        channel_maps=channel_maps,
        downloads=downloads,
    )


SHAKESPEARE = SharedDataset(shakespeare.load_shakespeare_split, shakespeare.shakespeare_roles)
BUILTIN_TASKS = (
    builtin_task("digits", SharedDataset(load_digits_split), digits_cnn, 10, DIGITS_CUTS),
    builtin_task("mnist1d", SharedDataset(load_mnist1d_split), mnist1d_cnn, 10, MNIST1D_CUTS),
    builtin_task("mnist", SharedDataset(fixed_split(load_mnist)), lenet, 10, LENET_CUTS),
    builtin_task(
        "fashion_mnist",
        SharedDataset(fixed_split(load_fashion_mnist)),
        partial(lenet, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD),
        10,
        LENET_CUTS,
    ),
    builtin_task("cifar10", load_cifar10, resnet18, 10, RESNET_CUTS),
    builtin_task(
        "shakespeare",
        SHAKESPEARE,
        char_lstm,
        shakespeare.NUM_CLASSES,
        char_lstm_cuts(),
        channel_maps=False,
    ),
    builtin_task(
        "shakespeare_lstm256",
        SHAKESPEARE,
        partial(char_lstm, hidden=LEAF_HIDDEN),
        shakespeare.NUM_CLASSES,
        char_lstm_cuts(LEAF_HIDDEN),
        channel_maps=False,
    ),
    builtin_task(
        "shakespeare_leaf",
        SharedDataset(shakespeare.load_leaf_split, shakespeare.leaf_roles),
        char_lstm,
        shakespeare.NUM_CLASSES,
        char_lstm_cuts(),
        channel_maps=False,
        downloads=(shakespeare.LEAF_HOST,),
    ),
)
"""The built-in tasks, registered when `flwr_split.tasks` is imported."""

for _task in BUILTIN_TASKS:
    register_task(_task)
