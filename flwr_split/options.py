"""Read the App's run config (``[tool.flwr.app.config]`` + ``--run-config``) into typed settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flwr_split.common.typed_values import as_kind
from flwr_split.metrics.profiles import ProfileConfig
from flwr_split.tasks import TaskConfig
from flwr_split.tasks.optim import OptimizerConfig


def _get(run_config: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = run_config.get(key, default)
    try:
        return as_kind(value, kind)
    except TypeError:
        raise ValueError(f"run config '{key}' must be {kind.__name__}, got {value!r}") from None


@dataclass(frozen=True)
class RunSettings:
    """Every knob of a run, typed and validated.

    Parameters
    ----------
    task : TaskConfig
        Task, cut and data split (keys ``task``, ``cut``, ``test-fraction``,
        ``partitioner``, ``dirichlet-alpha``, ``classes-per-client``,
        ``group-norm``, ``seed``).
    optimizer : OptimizerConfig
        Keys ``optimizer``, ``lr``, ``momentum``.
    strategy : dict[str, Any]
        Keyword arguments of `strategies.base.SplitStrategy` (``uplink``,
        ``downlink``, ``correction``, ``sampler``, ``batch-size``, ``sync``, ``eval-every``,
        ``step-timeout``, and the client profiles: ``compute-factor``,
        ``uplink-mbps``, ``downlink-mbps``, ``latency-ms``,
        ``straggler-fraction``, ``straggler-slowdown``, ``straggler-latency``,
        ``straggler-delay``).
    epochs : int
        Passes over the training data (key ``epochs``).
    max_steps : int or None
        Stop after this many steps; ``0`` means no limit (key ``max-steps``).
    min_nodes : int
        Nodes to wait for before the first step (key ``min-nodes``).
    output_dir : str
        Where the run's CSV and plots go (key ``output-dir``).
    run_name : str
        Name of the run's files (key ``run-name``).
    """

    task: TaskConfig
    optimizer: OptimizerConfig
    strategy: dict[str, Any]
    epochs: int
    max_steps: int | None
    min_nodes: int
    output_dir: str
    run_name: str

    @classmethod
    def from_run_config(cls, run_config: dict[str, Any]) -> RunSettings:
        """Parse a Flower run config; missing keys take the documented defaults."""
        task = TaskConfig(
            task=_get(run_config, "task", str, "digits"),
            cut=_get(run_config, "cut", int, 1),
            test_fraction=_get(run_config, "test-fraction", float, 0.2),
            partitioner=_get(run_config, "partitioner", str, "iid"),
            dirichlet_alpha=_get(run_config, "dirichlet-alpha", float, 0.5),
            classes_per_client=_get(run_config, "classes-per-client", int, 2),
            group_norm=_get(run_config, "group-norm", bool, False),
            channels_last=_get(run_config, "channels-last", bool, False),
            seed=_get(run_config, "seed", int, 0),
        )
        optimizer = OptimizerConfig(
            name=_get(run_config, "optimizer", str, "sgd"),
            lr=_get(run_config, "lr", float, 0.05),
            momentum=_get(run_config, "momentum", float, 0.9),
        )
        strategy = {
            "uplink": _get(run_config, "uplink", str, "identity"),
            "downlink": _get(run_config, "downlink", str, "identity"),
            "correction": _get(run_config, "correction", float, 0.0),
            "sampler": _get(run_config, "sampler", str, "fixed"),
            "batch_size": _get(run_config, "batch-size", int, 16),
            "sync": _get(run_config, "sync", str, "every_epoch"),
            "eval_every": _get(run_config, "eval-every", int, 20),
            "step_timeout": _get(run_config, "step-timeout", float, 300.0),
            "profiles": ProfileConfig(
                compute_factor=_get(run_config, "compute-factor", float, 1.0),
                uplink_mbps=_get(run_config, "uplink-mbps", float, 10.0),
                downlink_mbps=_get(run_config, "downlink-mbps", float, 50.0),
                latency_ms=_get(run_config, "latency-ms", float, 0.0),
                straggler_fraction=_get(run_config, "straggler-fraction", float, 0.0),
                straggler_slowdown=_get(run_config, "straggler-slowdown", float, 10.0),
                straggler_latency=_get(run_config, "straggler-latency", float, 0.0),
                straggler_delay=_get(run_config, "straggler-delay", str, "fixed"),
                seed=_get(run_config, "seed", int, 0),
            ),
        }
        max_steps = _get(run_config, "max-steps", int, 0)
        return cls(
            task=task,
            optimizer=optimizer,
            strategy=strategy,
            epochs=_get(run_config, "epochs", int, 25),
            max_steps=max_steps or None,
            min_nodes=_get(run_config, "min-nodes", int, 2),
            output_dir=_get(run_config, "output-dir", str, "results/default"),
            run_name=_get(run_config, "run-name", str, "default"),
        )
