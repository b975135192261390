"""A task's own optimizer and LR scheduler drive the top and the bottoms.

The bottoms' schedule survives the round trip through the client's ``context.state``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from flwr_split.client.app import app
from flwr_split.client.session_cache import SESSION_CACHE
from flwr_split.client.state import STATE_SCHEDULE, schedule_of
from flwr_split.tasks import Optimization, OptimizerConfig, TaskConfig, get_task, register_task
from flwr_split.tasks.lean_optim import LeanOptimizer
from flwr_split.testing import InProcessGrid
from strategies.parallel import ParallelSplitLearning

LR, GAMMA = 0.1, 0.5

register_task(
    dataclasses.replace(
        get_task("digits"),
        name="tests_digits_decaying",
        optimizer=lambda params: torch.optim.SGD(params, lr=LR),
        scheduler=lambda optimizer: torch.optim.lr_scheduler.ExponentialLR(optimizer, GAMMA),
    )
)


def test_restart_keeps_the_schedule_and_the_decayed_rate():
    task = get_task("tests_digits_decaying")
    layer = torch.nn.Linear(2, 1)
    optimization = Optimization(task, OptimizerConfig(), layer.parameters())
    for _ in range(3):
        optimization.step()
    optimization.restart(layer.parameters())
    assert optimization.optimizer.param_groups[0]["lr"] == pytest.approx(LR * GAMMA**3)
    optimization.step()
    assert optimization.scheduler.last_epoch == 4


def test_without_factories_the_run_options_optimizer_is_used():
    layer = torch.nn.Linear(2, 1)
    optimization = Optimization(
        get_task("digits"), OptimizerConfig(name="adam"), layer.parameters()
    )
    assert isinstance(optimization.optimizer, LeanOptimizer) and optimization.scheduler is None
    assert optimization.optimizer.config.name == "adam"


@pytest.mark.parametrize("cached", [True, False])
def test_the_bottoms_schedule_survives_context_state(monkeypatch, cached):
    monkeypatch.setattr(SESSION_CACHE, "enabled", cached)  # off: every message rebuilds
    grid = InProcessGrid(app, 2)
    strategy = ParallelSplitLearning(
        TaskConfig(task="tests_digits_decaying"), batch_size=4, sync="never", min_available_nodes=2
    )
    strategy.start(grid, max_steps=5)
    for context in grid.contexts.values():
        schedule = schedule_of(context.state[STATE_SCHEDULE])
        assert schedule["last_epoch"] == 5  # one backward per step (the last at the finish)
        assert schedule["_last_lr"] == [pytest.approx(LR * GAMMA**5)]
    top = strategy.trainer.optimization
    assert top.scheduler.last_epoch == 5
    assert top.optimizer.param_groups[0]["lr"] == pytest.approx(LR * GAMMA**5)
