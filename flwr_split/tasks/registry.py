"""The task registry: names to `SplitTask`s, filled by `register_task` and entry points.

A package declares its tasks in the entry-point group ``flwr_split.tasks``::

    [project.entry-points."flwr_split.tasks"]
    cifar = "mypackage.task:CIFAR_TASK"

so every process (ServerApp, ClientApp, SuperNode) finds them by name.
"""

from __future__ import annotations

from flwr_split.common.registry import Registry
from flwr_split.tasks.task import SplitTask

TASKS: Registry[SplitTask] = Registry("task", "flwr_split.tasks")
"""All known tasks."""


def register_task(task: SplitTask) -> SplitTask:
    """Register ``task`` under ``task.name`` and return it.

    Raises
    ------
    ValueError
        If another task is registered under that name.
    """
    if not isinstance(task, SplitTask):
        raise TypeError(f"register_task takes a SplitTask, got {type(task).__name__}")
    return TASKS.register(task.name, task)


def get_task(name: str) -> SplitTask:
    """Return the task registered (or declared by an installed package) as ``name``.

    Raises
    ------
    flwr_split.common.registry.RegistryError
        If no task has that name.
    """
    return TASKS.get(name)
