"""`TaskConfig`: which registered task, where to cut it and how to split its data.

It travels in every message's ``sl.cfg``, so every field is plain data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from flwr_split.common.registry import RegistryError
from flwr_split.tasks.registry import get_task
from flwr_split.tasks.task import SplitTask


@dataclass(frozen=True)
class TaskConfig:
    """Which task, where to cut it and how to split its data over clients.

    Parameters
    ----------
    task : str (default: "digits")
        Name of a registered `SplitTask` (see `register_task`).
    cut : int (default: 1)
        Number of model blocks on the client side; one of the task's ``cuts``.
    test_fraction : float (default: 0.2)
        Fraction of the data held out for testing (built-in tasks).
    partitioner : str (default: "iid")
        ``"iid"``, ``"dirichlet"``, ``"extended-dirichlet"`` or, for tasks with
        natural groups, ``"natural"`` (training data; test data is always IID);
        one of the task's ``partitioners``.
    dirichlet_alpha : float (default: 0.5)
        Concentration of the (extended) Dirichlet partitioner.
    classes_per_client : int (default: 2)
        Classes per client of the extended Dirichlet partitioner.
    group_norm : bool (default: False)
        Put a GroupNorm after the first convolution (client side), as global
        sampling needs when local batches can be of size 1 (built-in CNNs).
    channels_last : bool (default: False)
        Send the cut-layer maps of a convolutional task channels last, so each
        position's channel vector is contiguous on the wire (the layout of
        TensorFlow's default ``channels_last`` format); the model's function is
        unchanged. Codecs that cut rows into contiguous pieces (``fedlite``'s
        sub-vectors) then see per-position feature vectors. Needs a task with
        ``channel_maps``.
    seed : int (default: 0)
        Seed of the train/test split, the partitions and the model initialization.
    """

    task: str = "digits"
    cut: int = 1
    test_fraction: float = 0.2
    partitioner: str = "iid"
    dirichlet_alpha: float = 0.5
    classes_per_client: int = 2
    group_norm: bool = False
    channels_last: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        try:
            task = get_task(self.task)
        except RegistryError as exc:
            raise ValueError(str(exc)) from None
        if task.cuts is not None and self.cut not in task.cuts:
            raise ValueError(f"task {self.task!r} has cuts {sorted(task.cuts)}, got {self.cut}")
        if self.cut < 1:
            raise ValueError(f"cut must be >= 1, got {self.cut}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if task.partitioners is not None and self.partitioner not in task.partitioners:
            raise ValueError(
                f"task {self.task!r} has partitioners {task.partitioners}, got {self.partitioner!r}"
            )
        if self.channels_last and not task.channel_maps:
            raise ValueError(f"task {self.task!r} has no channel maps at the cut to reorder")
        if not (math.isfinite(self.dirichlet_alpha) and self.dirichlet_alpha > 0):
            raise ValueError(f"dirichlet_alpha must be finite and > 0, got {self.dirichlet_alpha}")
        if self.classes_per_client < 1:
            raise ValueError(f"classes_per_client must be >= 1, got {self.classes_per_client}")

    @property
    def definition(self) -> SplitTask:
        """The registered `SplitTask` this config names."""
        return get_task(self.task)

    def as_dict(self) -> dict[str, str | int | float]:
        """Return the config as plain data (field name to value)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
