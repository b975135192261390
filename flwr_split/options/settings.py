"""Read the App's run config (``[tool.flwr.app.config]`` + ``--run-config``) into typed settings."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flwr_split.metrics.profiles import ProfileConfig
from flwr_split.options.declaration import Group, read_options
from flwr_split.tasks import TaskConfig
from flwr_split.tasks.optim import OptimizerConfig


@dataclass(frozen=True)
class RunSettings:
    """Every knob of a run, typed and validated (the options of group `Group.CLIENT` aside).

    Parameters
    ----------
    task : TaskConfig
        The options of group `Group.TASK`.
    optimizer : OptimizerConfig
        The options of group `Group.OPTIMIZER`.
    strategy : dict[str, Any]
        Keyword arguments of `strategies.base.SplitStrategy`: the options of
        group `Group.STRATEGY`, and ``profiles``, a `ProfileConfig` of the
        options of group `Group.PROFILES`.
    strategy_name : str
        Name of the strategy class in ``strategies.registry.STRATEGIES`` (key ``strategy``).
    epochs : int
        Passes over the training data (key ``epochs``).
    max_steps : int or None
        Stop after this many steps; ``None`` (key ``max-steps`` = 0) for no limit.
    output_dir : str
        Where the run's CSV and plots go (key ``output-dir``).
    run_name : str
        Name of the run's files (key ``run-name``; if empty, `default_run_name`).
    checkpoint_every : int
        Steps between checkpoints, at the next point the run can be resumed
        (key ``checkpoint-every``; 0: none).
    resume : bool
        Continue from the run's checkpoint (key ``resume``).
    """

    task: TaskConfig
    optimizer: OptimizerConfig
    strategy: dict[str, Any]
    strategy_name: str
    epochs: int
    max_steps: int | None
    output_dir: str
    run_name: str
    checkpoint_every: int
    resume: bool

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, Any]) -> RunSettings:
        """Parse a Flower run config; missing keys take the declared defaults.

        Raises
        ------
        ValueError
            If a key is not a declared option or a value does not fit its option
            (see `flwr_split.options.declaration.read_options`), or the values do
            not make a valid task, optimizer or profile config.
        """
        values = read_options(run_config)
        profiles = ProfileConfig(**values[Group.PROFILES])
        run, strategy = values[Group.RUN], values[Group.STRATEGY]
        task = TaskConfig(**values[Group.TASK])
        uplink, downlink = strategy["uplink"], strategy["downlink"]
        name = run["run_name"] or default_run_name(task.task, uplink, downlink)
        return cls(
            task=task,
            optimizer=OptimizerConfig(**values[Group.OPTIMIZER]),
            strategy={**strategy, "profiles": profiles},
            **{**run, "max_steps": run["max_steps"] or None, "run_name": name},
        )

    def label(self) -> str:
        """Return what runs, in words: task and cut, codecs, sampler (a plot's title)."""
        strategy = self.strategy
        return (
            f"{self.task.task} cut {self.task.cut}, up {strategy['uplink']}, "
            f"down {strategy['downlink']}, sampler {strategy['sampler']}"
        )


def default_run_name(task: str, uplink: str, downlink: str) -> str:
    """Return the name of a run's files that says what ran: task and codecs.

    ``default_run_name("digits", "quant:bits=8", "fp16")`` is
    ``"digits_up-quant-bits8_down-fp16"``: each spec with ``=`` dropped and
    every run of other characters than letters, digits and ``.`` made one ``-``.
    """

    def slug(spec: str) -> str:
        return re.sub(r"[^A-Za-z0-9.]+", "-", str(spec).replace("=", "")).strip("-")

    return f"{slug(task)}_up-{slug(uplink)}_down-{slug(downlink)}"
