"""Tasks: a data set, its client partitions and the split model pair, built from a config."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache, partial

import numpy as np
import torch
from torch import nn

from flwr_split.tasks.data import shakespeare
from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.tasks.data.digits import load_digits_split
from flwr_split.tasks.data.mnist1d import load_mnist1d_split
from flwr_split.tasks.data.partition import (
    NATURAL,
    PARTITION_SCHEMES,
    group_partition,
    partition_indices,
)
from flwr_split.tasks.models.char_lstm import LEAF_HIDDEN, char_lstm, char_lstm_cuts
from flwr_split.tasks.models.digits import DIGITS_CUTS, digits_cnn
from flwr_split.tasks.models.mnist1d import MNIST1D_CUTS, mnist1d_cnn
from flwr_split.tasks.models.split import split_layers


@dataclass(frozen=True)
class TaskDefinition:
    """What a task is made of.

    Parameters
    ----------
    load : Callable[[float, int], tuple[LabeledArrays, LabeledArrays]]
        ``load(test_fraction, seed)`` returns ``(train, test)``.
    layers : Callable[..., list[nn.Module]]
        ``layers(num_classes, group_norm=False)`` returns the whole model as a
        layer list (``group_norm``: GroupNorm after the first convolution).
    num_classes : int
        Number of label classes.
    cuts : dict[int, str]
        Valid cut values with a description of the cut layer.
    natural_groups : Callable[[float, int], np.ndarray] or None (default: None)
        ``natural_groups(test_fraction, seed)`` returns the natural group (e.g.
        speaking role) of every training sample, for ``partitioner="natural"``.
    channel_maps : bool (default: True)
        The cut-layer activations are ``(channels, *spatial)`` maps, so
        ``TaskConfig.channels_last`` can reorder them (a sequence model's
        ``(time, features)`` output already keeps each step's features together).
    """

    load: Callable[[float, int], tuple[LabeledArrays, LabeledArrays]]
    layers: Callable[..., list[nn.Module]]
    num_classes: int
    cuts: dict[int, str]
    natural_groups: Callable[[float, int], np.ndarray] | None = None
    channel_maps: bool = True


TASKS: dict[str, TaskDefinition] = {
    "digits": TaskDefinition(load_digits_split, digits_cnn, 10, DIGITS_CUTS),
    "mnist1d": TaskDefinition(load_mnist1d_split, mnist1d_cnn, 10, MNIST1D_CUTS),
    "shakespeare": TaskDefinition(
        shakespeare.load_shakespeare_split,
        char_lstm,
        shakespeare.NUM_CLASSES,
        char_lstm_cuts(),
        shakespeare.shakespeare_roles,
        channel_maps=False,
    ),
    "shakespeare_lstm256": TaskDefinition(
        shakespeare.load_shakespeare_split,
        partial(char_lstm, hidden=LEAF_HIDDEN),
        shakespeare.NUM_CLASSES,
        char_lstm_cuts(LEAF_HIDDEN),
        shakespeare.shakespeare_roles,
        channel_maps=False,
    ),
    "shakespeare_leaf": TaskDefinition(
        shakespeare.load_leaf_split,
        char_lstm,
        shakespeare.NUM_CLASSES,
        char_lstm_cuts(),
        shakespeare.leaf_roles,
        channel_maps=False,
    ),
}


@dataclass(frozen=True)
class TaskConfig:
    """Which task, where to cut it and how to split its data over clients.

    Parameters
    ----------
    task : str (default: "digits")
        Task name, a key of `TASKS`.
    cut : int (default: 1)
        Number of model blocks on the client side.
    test_fraction : float (default: 0.2)
        Fraction of the data held out for testing.
    partitioner : str (default: "iid")
        ``"iid"``, ``"dirichlet"``, ``"extended-dirichlet"`` or, for tasks with
        natural groups, ``"natural"`` (training data; test data is always IID).
    dirichlet_alpha : float (default: 0.5)
        Concentration of the (extended) Dirichlet partitioner.
    classes_per_client : int (default: 2)
        Classes per client of the extended Dirichlet partitioner.
    group_norm : bool (default: False)
        Put a GroupNorm after the first convolution (client side), as global
        sampling needs when local batches can be of size 1.
    channels_last : bool (default: False)
        Send the cut-layer maps of a convolutional task channels last, so each
        position's channel vector is contiguous on the wire (the layout of
        TensorFlow's default ``channels_last`` format); the model's function is
        unchanged. Codecs that cut rows into contiguous pieces (``fedlite``'s
        sub-vectors) then see per-position feature vectors.
    seed : int (default: 0)
        Seed of the train/test split, the partitions and the model initialization.
    """

    task: str = "digits"
    cut: int = 1
    test_fraction: float = 0.2
    partitioner: str = "iid"
    dirichlet_alpha: float = 0.5
    classes_per_client: int = 2
    group_norm: bool = False
    channels_last: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; available: {sorted(TASKS)}")
        if self.cut not in TASKS[self.task].cuts:
            raise ValueError(
                f"task {self.task!r} has cuts {sorted(TASKS[self.task].cuts)}, got {self.cut}"
            )
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.partitioner not in (*PARTITION_SCHEMES, NATURAL):
            raise ValueError(f"partitioner must be one of {(*PARTITION_SCHEMES, NATURAL)}")
        if self.partitioner == NATURAL and TASKS[self.task].natural_groups is None:
            raise ValueError(f"task {self.task!r} has no natural partition")
        if self.channels_last and not self.definition.channel_maps:
            raise ValueError(f"task {self.task!r} has no channel maps at the cut to reorder")
        if self.dirichlet_alpha <= 0:
            raise ValueError(f"dirichlet_alpha must be > 0, got {self.dirichlet_alpha}")
        if self.classes_per_client < 1:
            raise ValueError(f"classes_per_client must be >= 1, got {self.classes_per_client}")

    @property
    def definition(self) -> TaskDefinition:
        """The `TaskDefinition` this config names."""
        return TASKS[self.task]

    def as_dict(self) -> dict[str, str | int | float]:
        """Return the config as plain data (field name to value)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@lru_cache(maxsize=8)
def load_task_data(config: TaskConfig) -> tuple[LabeledArrays, LabeledArrays]:
    """Return the whole ``(train, test)`` data of the task."""
    return config.definition.load(config.test_fraction, config.seed)


@lru_cache(maxsize=8)
def _partitions(
    config: TaskConfig, num_partitions: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    train, test = load_task_data(config)
    natural_groups = config.definition.natural_groups
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


def client_data(
    config: TaskConfig, partition_id: int, num_partitions: int
) -> tuple[LabeledArrays, LabeledArrays]:
    """Return the ``(train, test)`` samples that client ``partition_id`` holds."""
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition_id {partition_id} not in [0, {num_partitions})")
    train, test = load_task_data(config)
    train_parts, test_parts = _partitions(config, num_partitions)
    return train.subset(train_parts[partition_id]), test.subset(test_parts[partition_id])


@lru_cache(maxsize=8)
def _initial_model(config: TaskConfig) -> tuple[nn.Sequential, nn.Sequential]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        layers = config.definition.layers(
            config.definition.num_classes, group_norm=config.group_norm
        )
    return split_layers(layers, config.cut, channels_last=config.channels_last)


def build_model(config: TaskConfig) -> tuple[nn.Sequential, nn.Sequential]:
    """Return a fresh ``(bottom, top)`` pair, initialized from ``config.seed``.

    The global torch RNG is left as it was; every call returns new modules
    with the same initial weights.
    """
    return copy.deepcopy(_initial_model(config))


def cut_shape(config: TaskConfig) -> tuple[int, ...]:
    """Return the per-sample shape of the cut-layer activations."""
    bottom, _ = build_model(config)
    train, _ = load_task_data(config)
    with torch.no_grad():
        out = bottom(torch.from_numpy(train.x[:1]))
    return tuple(out.shape[1:])
