"""Conventions shared by benchmarks: output folder, environment record, in-process runs."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from flwr_split.client.app import app as client_app
from flwr_split.options import RunSettings
from flwr_split.server.result import SplitResult
from flwr_split.tasks import TaskConfig
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.testing.inprocess import InProcessGrid
from strategies.parallel import ParallelSplitLearning
from strategies.registry import build_strategy

ROOT = Path(__file__).resolve().parent.parent
ECHO_APP = ROOT / "simulations" / "echo_app"
"""The echo App (Flower's floor): run by ``flwr run``, its ``flwr_split_echo`` imported by tools."""


def config_parser(doc: str, default_config: Path) -> argparse.ArgumentParser:
    """Return the parser of a config-driven benchmark.

    Options: ``--config`` (TOML, default ``default_config``), ``--quick`` and
    ``--results`` (base folder); the caller may add more.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--config", type=Path, default=default_config)
    parser.add_argument("--quick", action="store_true", help="the config's [quick] overrides")
    parser.add_argument("--results", default="results")
    return parser


def load_config(args: argparse.Namespace) -> dict:
    """Read ``args.config``; with ``args.quick`` its ``[quick]`` table overrides ``[bench]``."""
    config = tomllib.loads(args.config.read_text())
    if args.quick:
        config["bench"].update(config["quick"])
    return config


BENCH_OPTIMIZER_KEYS = {"optimizer": "name", "lr": "lr", "momentum": "momentum"}
"""Config key of a benchmark table -> `OptimizerConfig` field."""


def bench_optimizer(settings: Mapping[str, Any]) -> OptimizerConfig:
    """Return the optimizer a benchmark config table names.

    Keys ``optimizer`` (``"sgd"`` or ``"adam"``), ``lr`` and ``momentum``;
    a missing key takes `OptimizerConfig`'s default.
    """
    return OptimizerConfig(
        **{field: settings[key] for key, field in BENCH_OPTIMIZER_KEYS.items() if key in settings}
    )


def output_dir(name: str, base: str | Path = "results") -> Path:
    """Create and return a new ``<base>/<name>/<timestamp>/``.

    A run that starts in the same second as another gets ``<timestamp>-2``
    (``-3``, ...), never the other run's folder.
    """
    stamp = Path(base) / name / time.strftime("%Y%m%d-%H%M%S")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    path, attempt = stamp, 1
    while True:
        try:
            path.mkdir()
            return path
        except FileExistsError:
            attempt += 1
            path = stamp.with_name(f"{stamp.name}-{attempt}")


def write_env(path: Path, **extra: object) -> None:
    """Write ``env.json``: package versions, CPU count, git commit and ``extra``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        commit = ""
    env = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "git_commit": commit,
        **{pkg: version(pkg) for pkg in ("flwr", "torch", "numpy", "ray", "pandas")},
        **extra,
    }
    (path / "env.json").write_text(json.dumps(env, indent=2))


def save_figure(fig: Any, path: Path) -> None:
    """Lay out ``fig``, write it to ``path`` as PNG and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_split(
    task: TaskConfig,
    *,
    clients: int,
    epochs: int,
    max_steps: int | None = None,
    **strategy_kwargs: Any,
) -> tuple[ParallelSplitLearning, SplitResult]:
    """Run parallel SL on the in-process grid; return the strategy and its result.

    ``strategy_kwargs`` are keyword arguments of `ParallelSplitLearning`; the
    others (``optimizer`` among them) take the declared run-option defaults
    (`flwr_split.options.OPTIONS`), and messages are not measured.
    """
    defaults = RunSettings.from_run_config({})
    strategy = ParallelSplitLearning(
        task,
        **{
            "optimizer": defaults.optimizer,
            **defaults.strategy,
            "measure_messages": False,
            "min_available_nodes": clients,
            **strategy_kwargs,
        },
    )
    result = strategy.start(
        InProcessGrid(client_app, clients), num_epochs=epochs, max_steps=max_steps
    )
    return strategy, result


def run_configured(run_config: Mapping[str, Any], clients: int) -> SplitResult:
    """Run the strategy a run config names, configured by it, on the in-process grid.

    ``run_config`` holds keys of ``[tool.flwr.app.config]`` (the others take
    their defaults, ``min-nodes`` is ``clients``); messages are not measured.
    """
    settings = RunSettings.from_run_config({"min-nodes": clients, **run_config})
    settings = replace(settings, strategy={**settings.strategy, "measure_messages": False})
    return build_strategy(settings).start(
        InProcessGrid(client_app, clients), num_epochs=settings.epochs, max_steps=settings.max_steps
    )


def median_seconds(fn: Callable[[], object], repeats: int = 30) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def bottom_step(bottom: nn.Module, inputs: torch.Tensor) -> Callable[[], None]:
    """Return one client step to time against a codec: the bottom's forward and backward.

    The backward takes a gradient of ones at the cut layer, so the step costs what
    the client computes for a batch, whatever the server sends back.
    """

    def step() -> None:
        bottom.zero_grad()
        out = bottom(inputs)
        out.backward(torch.ones_like(out))

    return step


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads; restore the caller's setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
