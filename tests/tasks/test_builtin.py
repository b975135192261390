"""Built-in tasks: registered through the public API; their data is read by clients only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flwr_split.client.app import app
from flwr_split.sampling import class_shares
from flwr_split.tasks import (
    TASKS,
    TaskConfig,
    build_model,
    builtin,
    builtin_cut_shape,
    client_data,
    cut_shape,
    get_task,
    load_task_data,
)
from flwr_split.testing import InProcessGrid
from strategies.parallel import ParallelSplitLearning

BUILTIN = ("digits", "mnist1d", "shakespeare", "shakespeare_lstm256", "shakespeare_leaf")


def test_builtin_tasks_are_registered_split_tasks():
    assert set(BUILTIN) <= set(TASKS.names())
    for task in builtin.BUILTIN_TASKS:
        assert get_task(task.name) is task
        assert task.cuts and task.num_classes


@pytest.mark.parametrize(("task", "cut"), [("digits", 1), ("digits", 2), ("mnist1d", 2)])
def test_cut_shape_from_a_zero_sample_equals_the_one_from_real_data(task, cut):
    config = TaskConfig(task=task, cut=cut)
    x = load_task_data(config)[0].x
    bottom, _ = build_model(config)
    assert cut_shape(config, x.shape[1:], x.dtype.name) == tuple(
        bottom(torch.from_numpy(x[:1])).shape[1:]
    )
    assert builtin_cut_shape(config) == cut_shape(config, x.shape[1:], str(x.dtype))


def test_a_node_with_a_data_path_reads_its_own_file(tmp_path):
    config = TaskConfig()
    train, test = client_data(config, 1, 4)
    path = tmp_path / "node.npz"
    np.savez(path, x_train=train.x[:10], y_train=train.y[:10], x_test=test.x, y_test=test.y)
    grid = InProcessGrid(app, 2, node_configs=[{}, {"data-path": str(path)}])
    strategy = ParallelSplitLearning(config, batch_size=4, min_available_nodes=2)
    strategy.start(grid, max_steps=1)
    assert [c.train_count for c in strategy.clients] == [len(client_data(config, 0, 2)[0]), 10]


@pytest.fixture
def clients_only(monkeypatch):
    """Built-in data can be read only while the ClientApp handles a message."""
    inside = []

    def client_app(message, context):
        inside.append(True)
        try:
            return app(message, context)
        finally:
            inside.pop()

    def guarded(config):
        if not inside:
            raise AssertionError("the server read client data")
        return load_task_data(config)

    monkeypatch.setattr(builtin, "load_task_data", guarded)
    return client_app


@pytest.mark.slow  # trains on several tasks
def test_the_server_reads_no_data_and_still_reports_the_batch_deviation(clients_only):
    config = TaskConfig()
    strategy = ParallelSplitLearning(config, batch_size=8, eval_every=5, min_available_nodes=10)
    result = strategy.start(InProcessGrid(clients_only, 10), max_steps=10)
    assert result.rejected == []
    pooled = class_shares(load_task_data(config)[0].y, 10)  # what the server used to read
    assert np.array_equal(strategy.roster.pooled_shares, pooled)
    for column in ("batch_deviation", "batch_deviation_l2", "batch_deviation_max"):
        assert np.isfinite(result.history[column]).all()
