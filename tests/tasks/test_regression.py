"""A regression task (float32 targets, MSE loss, no accuracy) runs through the in-process grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Context, RecordDict
from torch import nn

from flwr_split.client.app import app
from flwr_split.tasks import (
    LabeledArrays,
    SplitTask,
    TaskConfig,
    Values,
    node_partition,
    register_task,
)
from flwr_split.testing import InProcessGrid
from flwr_split.wire import ProtocolError, get_targets, put_targets
from strategies.parallel import ParallelSplitLearning

FEATURES = 6
WEIGHTS = np.linspace(-1.0, 1.0, FEATURES * 2, dtype=np.float32).reshape(FEATURES, 2)


def mlp(config: TaskConfig) -> tuple[nn.Module, nn.Module]:
    """A linear-ReLU bottom and a linear top predicting two numbers."""
    return nn.Sequential(nn.Linear(FEATURES, 16), nn.ReLU()), nn.Linear(16, 2)


def tabular(context: Context, config: TaskConfig) -> tuple[LabeledArrays, LabeledArrays]:
    """Each node draws its own rows of a noisy linear map (seeded by its partition)."""
    partition_id, _ = node_partition(context)
    rng = np.random.default_rng([config.seed, partition_id])
    x = rng.normal(size=(60, FEATURES)).astype(np.float32)
    y = (x @ WEIGHTS + 0.01 * rng.normal(size=(60, 2))).astype(np.float32)
    return LabeledArrays(x[:48], y[:48]), LabeledArrays(x[48:], y[48:])


def mean_absolute_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the batch."""
    return (outputs - targets).abs().mean()


register_task(
    SplitTask(
        "tests_tabular_regression",
        model=mlp,
        load_partition=tabular,
        target=Values((2,)),
        loss=nn.functional.mse_loss,
        metrics={"mae": mean_absolute_error},
    )
)


def test_regression_task_trains_and_reports_loss_and_its_metrics():
    grid = InProcessGrid(app, 3)
    task = TaskConfig(task="tests_tabular_regression")
    strategy = ParallelSplitLearning(task, batch_size=8, eval_every=6, min_available_nodes=3)
    result = strategy.start(grid, num_epochs=4)
    history = result.history
    assert result.rejected == []
    assert {"loss", "mae", "train_loss"} <= set(history.columns)
    assert "accuracy" not in history.columns
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert history["batch_deviation"].isna().all()  # no classes, no deviation
    targets = result.traffic.query("phase == 'train' and kind == 'labels'")
    assert (targets["nbytes"] == 8 * 2 * 4).all()  # float32 pairs


@pytest.mark.parametrize(
    ("targets", "reason"),
    [
        (np.zeros((4, 3), np.float32), "expected float32"),
        (np.zeros((4, 2), np.float64), "expected float32"),
        (np.full((4, 2), np.nan, np.float32), "NaN or inf"),
    ],
)
def test_regression_targets_arrive_float32_shaped_and_finite(targets, reason):
    content = RecordDict()
    put_targets(content, np.zeros((4, 2), np.float32), Values((2,)))
    assert get_targets(content, 4, Values((2,))).shape == (4, 2)
    content["sl.labels"]["y"] = type(content["sl.labels"]["y"])(targets)
    with pytest.raises(ProtocolError, match=reason):
        get_targets(content, 4, Values((2,)))
