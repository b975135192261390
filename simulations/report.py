"""One report across methods: every codec, strategy and sampler on a task, against fp32 SL.

Usage: ``python -m simulations.report [--task digits] [--config simulations/configs/report.toml]
[--quick] [--seeds N] [--workers N] [--from DIR]``

Runs, on the in-process grid and from one run config (the config's ``run-config``
table; every other key at its declared default):

- **fp32 SL**: parallel SL with identity codecs, the default sampler and strategy;
- **every codec** of the registry (`flwr_split.codecs.registered_codecs`) at its
  typical setting (`flwr_split.codecs.example_spec`), once on the uplink only
  (gradients go down dense, as MS and FedLite send them) and once in both directions
  (the signed setting on gradients, and on activations that can be negative);
- **every other strategy** of `strategies.registry.STRATEGIES`, with fp32 codecs;
- **every other sampler** (the config's ``samplers``; default: every registered one)
  at its defaults, with fp32 codecs. A sampler whose batch is the union batch
  (`Sampler.per_client_batch` false) gets ``clients x batch-size``, the union batch of
  the default per-client sampling, so every method takes about the same steps.

each for ``--seeds`` seeds (the run config's seed and the next ones). Writes to
``<results>/report_<task>/<timestamp>/``: ``runs/`` (each run's history, traffic and
step CSVs), ``runs.csv`` (one row per run), ``table.csv`` and ``table.md`` (one row per
method: total bytes = up + down + labels + sync and their ratio to fp32 SL, accuracy
and its delta in percentage points, simulated time), ``pareto.png`` and ``summary.md``.
``--from DIR`` reads the finished runs of ``DIR`` (a report folder or any folder of
``<name>.csv`` histories beside their ``<name>_traffic.csv``) instead of running.
"""

from __future__ import annotations

import logging
import re
import shlex
import sys
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from flwr_split.codecs import example_spec, registered_codecs
from flwr_split.common.spec_strings import parse_spec
from flwr_split.metrics.results import save_run
from flwr_split.options import RunSettings
from flwr_split.sampling import get_sampler, registered_samplers
from flwr_split.tasks import build_model, load_task_data
from simulations.common import (
    config_parser,
    load_config,
    output_dir,
    run_configured,
    torch_threads,
    write_env,
)
from simulations.report_figure import plot_pareto
from simulations.report_summary import plural, summary_markdown
from simulations.report_table import (
    defaults,
    markdown_table,
    megabytes,
    method_label,
    method_table,
    read_runs,
)
from strategies.registry import STRATEGIES

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "report.toml"
PROBE_SAMPLES = 64
"""Training samples the untrained bottom runs on to see whether cut activations go negative."""


def signed_cut(run_config: dict[str, Any]) -> bool:
    """Whether the task's cut activations can be negative (probed on the untrained bottom).

    A task that does not load a shared data set is taken as signed.
    """
    task = RunSettings.from_run_config(run_config).task
    try:
        train, _ = load_task_data(task)
    except ValueError:
        return True
    bottom, _ = build_model(task)
    with torch.no_grad():
        return bool((bottom(torch.from_numpy(train.x[:PROBE_SAMPLES])) < 0).any())


def methods(bench: dict, run_config: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the run-config overrides of every method, fp32 SL first (see the module doc)."""
    default_strategy, default_sampler = defaults()
    up_signed = signed_cut(run_config)
    overrides: list[dict[str, Any]] = [{}]
    for codec in registered_codecs():
        if codec != "identity":
            uplink = example_spec(codec, signed=up_signed)
            overrides.append({"uplink": uplink})
            overrides.append({"uplink": uplink, "downlink": example_spec(codec, signed=True)})
    overrides += [{"strategy": name} for name in STRATEGIES.names() if name != default_strategy]
    union_batch = bench["clients"] * RunSettings.from_run_config(run_config).strategy["batch_size"]
    for spec in bench.get("samplers", registered_samplers()):
        if spec != default_sampler:
            per_client = get_sampler(spec).per_client_batch
            overrides.append(
                {"sampler": spec, **({} if per_client else {"batch-size": union_batch})}
            )
    return overrides


def run_name(run_config: dict[str, Any]) -> str:
    """Return a file name of a run: its method label and seed, as letters, digits and ``_+.-``."""
    settings = RunSettings.from_run_config(run_config)
    method, _ = method_label(
        parse_spec(settings.strategy["uplink"])["id"],
        parse_spec(settings.strategy["downlink"])["id"],
        settings.strategy["sampler"],
        settings.strategy_name,
    )
    return f"{re.sub(r'[^A-Za-z0-9.+-]+', '_', method)}_seed{settings.task.seed}"


def jobs(bench: dict, seeds: int) -> list[dict[str, Any]]:
    """Return the run config of every (method, seed) run."""
    base = bench["run-config"]
    first = RunSettings.from_run_config(base).task.seed
    return [
        {**base, **override, "seed": first + offset}
        for override in methods(bench, base)
        for offset in range(seeds)
    ]


def train(run_config: dict[str, Any], clients: int) -> tuple[pd.DataFrame, ...]:
    """Run one job on one torch thread; return its history (with what ran), traffic and steps."""
    with torch_threads(1):
        result = run_configured(run_config, clients)
    settings = RunSettings.from_run_config(run_config)
    history = result.history.assign(
        strategy=settings.strategy_name,
        uplink_spec=settings.strategy["uplink"],
        downlink_spec=settings.strategy["downlink"],
    )
    return history, result.traffic, result.steps


def run_all(bench: dict, seeds: int, workers: int, runs_dir: Path) -> None:
    """Run every job (``workers`` processes; 1: in this process) and save each as it ends."""
    configs = jobs(bench, seeds)
    names = [run_name(config) for config in configs]
    clients = bench["clients"]
    print(f"{len(configs)} runs, {clients} clients each, {workers} worker(s)", flush=True)

    def save(index: int, frames: tuple[pd.DataFrame, ...]) -> None:
        history, traffic, steps = frames
        save_run(history, traffic, runs_dir, names[index], steps, plot=False)
        last = history.iloc[-1]
        print(
            f"[{index + 1}/{len(configs)}] {names[index]}: accuracy {last['accuracy']:.4f}, "
            f"{megabytes(last['bytes_up'] + last['bytes_down'])} MB, {last['wall_s']:.0f} s",
            flush=True,
        )

    if workers == 1:
        for index, config in enumerate(configs):
            save(index, train(config, clients))
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures: dict[Future, int] = {
            pool.submit(train, config, clients): index for index, config in enumerate(configs)
        }
        for future in as_completed(futures):
            save(futures[future], future.result())


def write_report(runs: pd.DataFrame, out: Path, command: str) -> pd.DataFrame:
    """Write ``runs.csv``, the table (CSV, Markdown), figure and summary; return the table."""
    table = method_table(runs)
    runs.to_csv(out / "runs.csv", index=False)
    table.to_csv(out / "table.csv", index=False)
    (out / "table.md").write_text(markdown_table(table))
    first = table.iloc[0]
    title = (
        f"{first['task']}: test accuracy against bytes, {first['clients']} clients, "
        f"{plural(first['epochs'], 'epoch')}, {plural(runs['seed'].nunique(), 'seed')}"
    )
    plot_pareto(table, out / "pareto.png", title)
    (out / "summary.md").write_text(summary_markdown(table, command))
    return table


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run (or read) every method's runs and write the report; return the method table."""
    parser = config_parser(__doc__, DEFAULT_CONFIG)
    parser.add_argument("--task", help="task name (default: the config's run-config task)")
    parser.add_argument("--seeds", type=int, help="seeds per method (default: the config's)")
    parser.add_argument("--workers", type=int, default=1, help="runs at once (processes)")
    parser.add_argument("--from", dest="source", type=Path, help="read the finished runs of DIR")
    args = parser.parse_args(argv)
    command = shlex.join(
        ["python", "-m", "simulations.report", *(sys.argv[1:] if argv is None else argv)]
    )
    logging.getLogger("flwr").setLevel(logging.WARNING)
    config = load_config(args)
    bench = config["bench"]
    if args.task:
        bench["run-config"] = {**bench["run-config"], "task": args.task}
    env = {"config": config, "quick": args.quick, "source": str(args.source or "")}
    env["command"] = command
    if args.source is not None:
        source = args.source / "runs" if (args.source / "runs").is_dir() else args.source
        runs = read_runs(source)
        out = output_dir(f"report_{runs['task'].iloc[0]}", args.results)
        write_env(out, **env)
    else:
        task = RunSettings.from_run_config(bench["run-config"]).task.task
        out = output_dir(f"report_{task}", args.results)
        write_env(out, **env)  # before the runs: the commit they ran
        run_all(bench, args.seeds or bench["seeds"], args.workers, out / "runs")
        runs = read_runs(out / "runs")
    table = write_report(runs, out, command)
    print((out / "summary.md").read_text())
    print(f"results in {out}")
    return table


if __name__ == "__main__":
    main()
