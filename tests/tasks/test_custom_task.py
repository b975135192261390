"""A task defined entirely in the tests (model, npz loader, loss) runs like a built-in one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Context
from torch import nn

from flwr_split.client.app import app
from flwr_split.tasks import (
    Classes,
    LabeledArrays,
    SplitTask,
    TaskConfig,
    get_task,
    load_npz,
    node_data_path,
    register_task,
)
from flwr_split.testing import InProcessGrid
from strategies.parallel import ParallelSplitLearning

NUM_CLIENTS = 3
NUM_CLASSES = 4


def tiny_cnn(config: TaskConfig) -> tuple[nn.Module, nn.Module]:
    """A bottom of two convolutions and a pooled linear top for 3x32x32 images."""
    bottom = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
    top = nn.Sequential(nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(), nn.Flatten(), nn.LazyLinear(4))
    top(torch.zeros(1, 8, 16, 16))  # materialize the lazy layer under the task's seed
    return bottom, top


def own_files(context: Context, config: TaskConfig) -> tuple[LabeledArrays, LabeledArrays]:
    """Read this node's own ``.npz`` file; no partition id involved."""
    path = node_data_path(context)
    if path is None:
        raise ValueError("this task needs a 'data-path' in the node config")
    return load_npz(path)


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The task's own loss: cross-entropy with label smoothing."""
    return nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)


CIFAR_LIKE = register_task(
    SplitTask(
        "tests_cifar_like",
        model=tiny_cnn,
        load_partition=own_files,
        target=Classes(NUM_CLASSES),
        loss=smoothed_cross_entropy,
    )
)


@pytest.fixture
def client_files(tmp_path):
    """One ``.npz`` file per client, of different sizes, with a learnable signal."""
    rng = np.random.default_rng(0)
    paths = []
    for client in range(NUM_CLIENTS):
        split = {}
        for part, count in (("train", 40 + 8 * client), ("test", 12)):
            y = rng.integers(0, NUM_CLASSES, count)
            x = rng.normal(size=(count, 3, 32, 32)).astype(np.float32)
            x[:, y % 3] += 1.0
            split[f"x_{part}"], split[f"y_{part}"] = x, y
        path = tmp_path / f"client{client}.npz"
        np.savez(path, **split)
        paths.append(str(path))
    return paths


def test_a_task_from_the_tests_trains_on_each_clients_own_files(client_files):
    assert get_task("tests_cifar_like") is CIFAR_LIKE
    grid = InProcessGrid(
        app, NUM_CLIENTS, node_configs=[{"data-path": path} for path in client_files]
    )
    strategy = ParallelSplitLearning(
        TaskConfig(task="tests_cifar_like"), batch_size=8, min_available_nodes=NUM_CLIENTS
    )
    result = strategy.start(grid, num_epochs=2)
    assert result.rejected == []
    assert [c.train_count for c in strategy.clients] == [40, 48, 56]
    assert strategy.roster.input_spec == ((3, 32, 32), "float32")
    assert strategy.roster.cut_shape == (8, 16, 16)
    final = result.history.iloc[-1]
    assert final["eval_samples"] == NUM_CLIENTS * 12
    assert np.isfinite(final["loss"]) and 0.0 <= final["accuracy"] <= 1.0
    assert np.isfinite(result.history["batch_deviation"]).all()


def test_without_its_file_a_client_rejects_the_hello_with_the_reason(client_files):
    node_configs = [{"data-path": path} for path in client_files[:2]] + [{}]
    grid = InProcessGrid(app, NUM_CLIENTS, node_configs=node_configs)
    strategy = ParallelSplitLearning(
        TaskConfig(task="tests_cifar_like"), batch_size=8, min_available_nodes=NUM_CLIENTS
    )
    result = strategy.start(grid, max_steps=1)
    assert [c.partition_id for c in strategy.clients] == [0, 1]
    assert "needs a 'data-path'" in result.rejected[0][2]
