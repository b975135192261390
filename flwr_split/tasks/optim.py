"""Optimizers of both halves (the server's top and the clients' bottoms).

The run's `OptimizerConfig`, or a task's own optimizer and LR-scheduler factories.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from flwr_split.tasks.lean_optim import LeanOptimizer

if TYPE_CHECKING:
    from flwr_split.tasks.task import SplitTask

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
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be finite and > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """Create the optimizer over ``params``."""
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)


class Optimization:
    """A task's optimizer over some parameters and its optional LR scheduler, stepped together.

    Without the task's own factories it is the run's `OptimizerConfig` as a
    `LeanOptimizer` (same updates, no ``torch._dynamo`` import in a fresh
    client process); a task scheduler without a task optimizer wraps
    ``OptimizerConfig.build``'s torch optimizer, as torch schedulers need one.

    Parameters
    ----------
    task : SplitTask
        Its ``optimizer`` and ``scheduler`` factories (None: ``fallback``, no scheduler).
    fallback : OptimizerConfig
        The run's optimizer, used when the task has no optimizer factory.
    params : Iterable[torch.nn.Parameter]
        Parameters to optimize.
    """

    def __init__(
        self, task: SplitTask, fallback: OptimizerConfig, params: Iterable[torch.nn.Parameter]
    ) -> None:
        self.task = task
        self.fallback = fallback
        self.optimizer, self.scheduler = self._build(params)

    def _build(
        self, params: Iterable[torch.nn.Parameter]
    ) -> tuple[torch.optim.Optimizer | LeanOptimizer, torch.optim.lr_scheduler.LRScheduler | None]:
        task = self.task
        if task.optimizer:
            optimizer = task.optimizer(params)
        elif task.scheduler:
            optimizer = self.fallback.build(params)
        else:
            return LeanOptimizer(self.fallback, params), None
        return optimizer, task.scheduler(optimizer) if task.scheduler else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of the parameters."""
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        """Step the optimizer, then the scheduler."""
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()

    def restart(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Start a fresh optimizer over ``params``, the schedule where it was."""
        schedule = self.scheduler_state()
        self.optimizer, self.scheduler = self._build(params)
        if schedule is not None:
            self.load_scheduler_state(schedule)

    def scheduler_state(self) -> dict[str, Any] | None:
        """Return the scheduler's state (plain data), None without a scheduler."""
        return None if self.scheduler is None else self.scheduler.state_dict()

    def state_dict(self) -> dict[str, Any]:
        """Return the optimizer's and the scheduler's states."""
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict`."""
        self.optimizer.load_state_dict(state["optimizer"])
        if state["scheduler"] is not None:
            self.load_scheduler_state(state["scheduler"])

    def load_scheduler_state(self, state: dict[str, Any]) -> None:
        """Resume the schedule from `scheduler_state` output; the learning rates follow."""
        if self.scheduler is None:
            raise ValueError("the task has no scheduler to resume")
        self.scheduler.load_state_dict(state)
        for group, lr in zip(
            self.optimizer.param_groups, self.scheduler.get_last_lr(), strict=True
        ):
            group["lr"] = lr
