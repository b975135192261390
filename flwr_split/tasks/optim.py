"""Optimizer settings of both halves (the server's top and the clients' bottoms)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer used for the server's top and the clients' bottoms.

    Parameters
    ----------
    name : str (default: "sgd")
        ``"sgd"`` or ``"adam"``.
    lr : float (default: 0.05)
        Learning rate.
    momentum : float (default: 0.9)
        SGD momentum (ignored by Adam).
    """

    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """Create the optimizer over ``params``."""
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)
