"""The model pair of a task: built with seeded weights, and the shape at the cut."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from flwr_split.tasks.config import TaskConfig


@lru_cache(maxsize=8)
def _initial_model(config: TaskConfig) -> tuple[nn.Module, nn.Module]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return config.definition.model(config)


def build_model(config: TaskConfig) -> tuple[nn.Module, nn.Module]:
    """Return a fresh ``(bottom, top)`` pair, initialized from ``config.seed``.

    The global torch RNG is left as it was; every call returns new modules
    with the same initial weights.
    """
    return copy.deepcopy(_initial_model(config))


def cut_shape(config: TaskConfig, input_shape: Sequence[int], dtype: str) -> tuple[int, ...]:
    """Return the per-sample shape of the cut-layer activations.

    The bottom runs (in eval mode, on a copy) on one all-zero sample of
    ``input_shape`` and ``dtype``; no data is read.

    Parameters
    ----------
    config : TaskConfig
        Task and cut.
    input_shape : Sequence[int]
        Shape of one input sample.
    dtype : str
        Numpy dtype name of the inputs (``"float32"``, ``"int64"``, ...).
    """
    bottom = _initial_model(config)[0]
    zeros = torch.from_numpy(np.zeros((1, *input_shape), dtype=np.dtype(dtype)))
    with torch.no_grad():
        out = copy.deepcopy(bottom).eval()(zeros)
    return tuple(out.shape[1:])
