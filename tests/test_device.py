"""The device option: both halves on the device it names; tests run on the CPU."""

from __future__ import annotations

import pandas as pd
import pytest

from flwr_split.client.app import app
from flwr_split.tasks import TaskConfig
from flwr_split.testing import InProcessGrid
from strategies.parallel import ParallelSplitLearning

NODES = 3
OPTIONS = {"batch_size": 8, "eval_every": 3, "min_available_nodes": NODES}
COLUMNS = ["step", "accuracy", "loss", "train_loss", "bytes_up", "bytes_down"]


def _run(server_device: str, client_device: str | None) -> tuple[ParallelSplitLearning, object]:
    run_config = {} if client_device is None else {"device": client_device}
    strategy = ParallelSplitLearning(TaskConfig(), device=server_device, **OPTIONS)
    grid = InProcessGrid(app, NODES, run_config=run_config)
    return strategy, strategy.start(grid, max_steps=6)


def test_auto_on_a_cpu_machine_gives_the_same_run_as_the_default():
    _, default = _run("cpu", None)
    strategy, auto = _run("auto", "auto")
    assert strategy.device.type == "cpu"
    pd.testing.assert_frame_equal(auto.history[COLUMNS], default.history[COLUMNS])


def test_a_client_asked_for_a_device_it_cannot_use_answers_with_a_reason():
    strategy = ParallelSplitLearning(TaskConfig(), **OPTIONS)
    with pytest.raises(RuntimeError, match="no client answered"):
        strategy.start(InProcessGrid(app, NODES, run_config={"device": "gpu"}), max_steps=1)
    assert len(strategy.rejected) == NODES
    assert all("device must be one of" in reason for _, _, reason in strategy.rejected)


def test_the_server_refuses_an_unknown_device_before_the_run():
    with pytest.raises(ValueError, match="device must be"):
        ParallelSplitLearning(TaskConfig(), device="tpu")
