"""Tasks: a data set, its client partitions and the split model pair."""

from flwr_split.tasks.config import (
    TASKS,
    TaskConfig,
    TaskDefinition,
    build_model,
    client_data,
    cut_shape,
    load_task_data,
)

__all__ = [
    "TASKS",
    "TaskConfig",
    "TaskDefinition",
    "build_model",
    "client_data",
    "cut_shape",
    "load_task_data",
]
