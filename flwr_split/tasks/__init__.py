"""Tasks: a split model pair, the clients' own data and the objective, by name.

A task is a `SplitTask`; `register_task` makes it known by name (a package
can declare it in the ``flwr_split.tasks`` entry-point group instead), and a
`TaskConfig` names it with the cut and data-split settings sent to every
client. The built-in tasks (`flwr_split.tasks.builtin`) use the same API.
"""

from flwr_split.tasks.builtin import (
    SharedDataset,
    builtin_cut_shape,
    client_data,
    load_task_data,
)
from flwr_split.tasks.config import TaskConfig
from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.tasks.model import build_model, cut_shape
from flwr_split.tasks.models.split import split_layers
from flwr_split.tasks.node import DATA_PATH_KEY, load_npz, node_data_path, node_partition
from flwr_split.tasks.objectives import CLASSIFICATION_LOSS, CLASSIFICATION_METRICS, accuracy
from flwr_split.tasks.optim import Optimization, OptimizerConfig
from flwr_split.tasks.registry import TASKS, get_task, register_task
from flwr_split.tasks.targets import Classes, Target, Values
from flwr_split.tasks.task import SplitTask

__all__ = [
    "CLASSIFICATION_LOSS",
    "CLASSIFICATION_METRICS",
    "DATA_PATH_KEY",
    "TASKS",
    "Classes",
    "LabeledArrays",
    "Optimization",
    "OptimizerConfig",
    "SharedDataset",
    "SplitTask",
    "Target",
    "TaskConfig",
    "Values",
    "accuracy",
    "build_model",
    "client_data",
    "cut_shape",
    "builtin_cut_shape",
    "get_task",
    "load_npz",
    "load_task_data",
    "node_data_path",
    "node_partition",
    "register_task",
    "split_layers",
]
