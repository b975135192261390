"""A user's App: a CIFAR-shaped CNN and a small regressor, each client reading its own file."""

from __future__ import annotations

from pathlib import Path

import torch
from flwr.app import Context
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from torch import nn

from flwr_split.client import register_split_handlers
from flwr_split.tasks import (
    Classes,
    LabeledArrays,
    SplitTask,
    TaskConfig,
    Values,
    load_npz,
    node_partition,
    register_task,
)
from strategies.parallel import ParallelSplitLearning


def images_model(config: TaskConfig) -> tuple[nn.Module, nn.Module]:
    """A conv block on the client (3x32x32 -> 8x16x16), the rest on the server."""
    bottom = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    top = nn.Sequential(
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(64, 4),
    )
    return bottom, top


def regression_model(config: TaskConfig) -> tuple[nn.Module, nn.Module]:
    """A tabular regressor: 8 features in, one value out."""
    return nn.Sequential(nn.Linear(8, 16), nn.Tanh()), nn.Sequential(nn.Linear(16, 1))


def smoothed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with label smoothing 0.1: this App's own loss."""
    return nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)


def mean_absolute_error(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the batch."""
    return (outputs - targets).abs().mean()


def own_files(context: Context, config: TaskConfig) -> tuple[LabeledArrays, LabeledArrays]:
    """Read ``<data-dir>/<task>_<partition-id>.npz``: this client's own file, nobody else's."""
    partition_id, _ = node_partition(context)
    return load_npz(Path(str(context.run_config["data-dir"])) / f"{config.task}_{partition_id}.npz")


IMAGES = register_task(
    SplitTask(
        "byo_images",
        model=images_model,
        load_partition=own_files,
        target=Classes(4),
        loss=smoothed_cross_entropy,
    )
)
REGRESSION = register_task(
    SplitTask(
        "byo_regression",
        model=regression_model,
        load_partition=own_files,
        target=Values((1,)),
        loss=nn.functional.mse_loss,
        metrics={"mae": mean_absolute_error},
    )
)

client_app = register_split_handlers(ClientApp(), tasks=[IMAGES, REGRESSION])
server_app = ServerApp()


@server_app.main()
def main(grid: Grid, context: Context) -> None:
    """Train the configured task and write its history to ``<output>``."""
    config = context.run_config
    strategy = ParallelSplitLearning(
        TaskConfig(task=str(config["task"])),
        uplink=str(config["uplink"]),
        batch_size=8,
        eval_every=5,
        min_available_nodes=int(config["nodes"]),
    )
    result = strategy.start(grid, num_epochs=int(config["epochs"]))
    result.history.to_csv(str(config["output"]), index=False)
