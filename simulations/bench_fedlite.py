"""Benchmark: FedLite (product quantization + gradient correction) against fp32 activations.

Usage: ``python -m simulations.bench_fedlite [--config simulations/configs/bench_fedlite.toml]
[--quick] [--workers N] [--seed S] [--task NAME]
[--grid SPEC] [--timing-only]``

For every task of the config, parallel SL runs on the in-process grid (gradients go down
uncompressed; batches planned by the config's ``sampler``, default ``"fixed"``): the fp32
baseline, every FedLite setting of the task's ``grid`` without correction (λ = 0), and the
settings of its ``sweep`` with every λ of ``lambdas``. Per run it records the measured uplink
activation bytes and their ratio to fp32, the final test accuracy with compressed activations
(as trained) and without (the trained bottom and top on the raw test inputs), and the drop
against fp32 in points. The correction ablation compares λ = 0 with the best λ of each swept
setting. Per setting it also times, on the trained fp32 bottom and one client batch, the
FedLite encode (at the configured Lloyd iteration caps) against that batch's bottom
forward+backward (medians, timed in turns, one thread). Writes ``runs.csv``, ``ablation.csv``,
``timing.csv``, ``histories.csv``, ``accuracy_vs_bytes.png``, ``accuracy_vs_ratio.png`` and
``env.json``; ``histories.csv`` grows as runs finish. ``--timing-only`` trains just the fp32
baselines and writes their ``histories.csv``, ``timing.csv`` and ``env.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from flwr_split.codecs import CodecContext, get_codec  # noqa: E402
from flwr_split.tasks import TaskConfig, build_model, load_task_data  # noqa: E402
from flwr_split.tasks.optim import OptimizerConfig  # noqa: E402
from simulations.common import (  # noqa: E402
    bottom_step,
    config_parser,
    load_config,
    median_seconds,
    output_dir,
    run_split,
    save_figure,
    write_env,
)

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "bench_fedlite.toml"
BASELINE = "identity"
TIMING_ROUNDS = 5
"""Turns of `interleaved_ms`."""


@dataclass(frozen=True)
class Job:
    """One training run: a task entry of the config, an uplink codec and a correction weight."""

    entry: dict
    uplink: str
    correction: float


def task_config(entry: dict, seed: int) -> TaskConfig:
    """Return the `TaskConfig` of a task entry of the config."""
    return TaskConfig(
        task=entry["task"],
        cut=entry["cut"],
        partitioner=entry["partitioner"],
        channels_last=entry.get("channels_last", False),
        seed=seed,
    )


def plan(bench: dict, baselines_only: bool = False) -> list[Job]:
    """Return the runs: per task fp32, the grid at λ = 0, the sweep at every other λ.

    With ``baselines_only`` just the fp32 run of every task (what the timing needs).
    """
    jobs = []
    for entry in bench["tasks"]:
        jobs.append(Job(entry, BASELINE, 0.0))
        if baselines_only:
            continue
        jobs.extend(Job(entry, spec, 0.0) for spec in entry["grid"])
        jobs.extend(
            Job(entry, spec, lam) for spec in entry["sweep"] for lam in bench["lambdas"] if lam
        )
    return jobs


def _train(job_and_bench: tuple[Job, dict]) -> tuple[pd.DataFrame, float, dict]:
    """Train one run; return its history, uncompressed test accuracy and trained bottom."""
    job, bench = job_and_bench
    torch.set_num_threads(1)
    entry = job.entry
    task = task_config(entry, bench["seed"])
    strategy, result = run_split(
        task,
        clients=bench["clients"],
        epochs=entry["epochs"],
        uplink=job.uplink,
        correction=job.correction,
        batch_size=bench["batch_size"],
        eval_every=entry["eval_every"],
        optimizer=OptimizerConfig(entry["optimizer"], entry["lr"], entry["momentum"]),
        max_steps=entry.get("max_steps"),
        sampler=bench.get("sampler", "fixed"),
    )
    _, test = load_task_data(task)
    with torch.no_grad():
        logits = strategy.top(strategy.bottom(torch.from_numpy(test.x)))
    labels = torch.from_numpy(test.y)
    accuracy = float((logits.argmax(1) == labels).float().mean())
    state = {k: v.detach().clone() for k, v in strategy.bottom.state_dict().items()}
    return result.history, accuracy, state


def summarize(jobs: list[Job], outputs: list) -> tuple[pd.DataFrame, dict]:
    """Return the runs table (one row per run) and the histories by (task, codec, λ)."""
    rows, histories = [], {}
    pairs = list(zip(jobs, outputs, strict=True))
    baselines = {job.entry["task"]: out for job, out in pairs if job.uplink == BASELINE}
    for job, (history, plain_accuracy, _) in pairs:
        name = job.entry["task"]
        base_history = baselines[name][0]
        base_bytes = float(base_history["activation_bytes"].iloc[-1])
        config = get_codec(job.uplink).get_config()
        final = float(history["accuracy"].iloc[-1])
        rows.append(
            {
                "task": name,
                "codec": job.uplink,
                "q": config.get("q", 0),
                "clusters": config.get("clusters", 0),
                "groups": config.get("groups", 0),
                "iters": config.get("iters", 0),
                "correction": job.correction,
                "activation_bytes": int(history["activation_bytes"].iloc[-1]),
                "uplink_ratio": base_bytes / float(history["activation_bytes"].iloc[-1]),
                "final_accuracy": final,
                "best_accuracy": float(history["accuracy"].max()),
                "accuracy_uncompressed": plain_accuracy,
                "drop_pp": 100 * (float(base_history["accuracy"].iloc[-1]) - final),
            }
        )
        histories[(name, job.uplink, job.correction)] = labelled_history(job, history)
    return pd.DataFrame(rows), histories


def ablation(runs: pd.DataFrame, bench: dict) -> pd.DataFrame:
    """Per swept setting: accuracy at λ = 0, the best λ and its accuracy (final, compressed)."""
    rows = []
    for entry in bench["tasks"]:
        for spec in entry["sweep"]:
            subset = runs[(runs["task"] == entry["task"]) & (runs["codec"] == spec)]
            plain = subset[subset["correction"] == 0]["final_accuracy"].iloc[0]
            best = subset.loc[subset["final_accuracy"].idxmax()]
            rows.append(
                {
                    "task": entry["task"],
                    "codec": spec,
                    "uplink_ratio": float(best["uplink_ratio"]),
                    "accuracy_lambda0": float(plain),
                    "best_lambda": float(best["correction"]),
                    "accuracy_best_lambda": float(best["final_accuracy"]),
                    "gain_pp": 100 * (float(best["final_accuracy"]) - float(plain)),
                    **{
                        f"accuracy_lambda_{lam:g}": float(
                            subset[subset["correction"] == lam]["final_accuracy"].iloc[0]
                        )
                        for lam in bench["lambdas"]
                    },
                }
            )
    return pd.DataFrame(rows)


def interleaved_ms(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median milliseconds of every function, measured in turns so load changes hit all alike.

    ``TIMING_ROUNDS`` rounds each take the median of ``repeats // TIMING_ROUNDS``
    calls (at least one) of every function in turn; the result is the median over rounds.
    """
    calls = max(1, repeats // TIMING_ROUNDS)
    rounds = {name: [] for name in fns}
    for _ in range(TIMING_ROUNDS):
        for name, fn in fns.items():
            rounds[name].append(median_seconds(fn, calls) * 1e3)
    return {name: float(np.median(values)) for name, values in rounds.items()}


def timing(task: TaskConfig, bottom_state: dict, specs: list[str], bench: dict) -> pd.DataFrame:
    """Encode and decode time of each spec against the bottom forward+backward of one batch.

    The bottom step, the encode and the decode of each setting are timed in turns
    (`interleaved_ms`), so each row's share compares times taken under the same load.
    """
    torch.set_num_threads(1)
    bottom, _ = build_model(task)
    bottom.load_state_dict(bottom_state)
    _, test = load_task_data(task)
    inputs = torch.from_numpy(test.x[: bench["batch_size"]])
    with torch.no_grad():
        acts = bottom(inputs)

    rows = []
    for spec in specs:
        for iters in bench["timing_iters"]:
            codec = get_codec({**get_codec(spec).get_config(), "iters": iters})
            ctx = CodecContext(seed=1)
            encoded = codec.encode(acts, ctx)
            fns = {
                "bottom": bottom_step(bottom, inputs),
                "encode": lambda c=codec, x=ctx: c.encode(acts, x),
                "decode": lambda c=codec, e=encoded: c.decode(e),
            }
            ms = interleaved_ms(fns, bench["timing_repeats"])
            rows.append(
                {
                    "task": task.task,
                    "codec": spec,
                    "iters": iters,
                    "encode_ms": ms["encode"],
                    "decode_ms": ms["decode"],
                    "bottom_fwd_bwd_ms": ms["bottom"],
                    "encode_share": ms["encode"] / ms["bottom"],
                }
            )
    return pd.DataFrame(rows)


def _task_panels(
    runs: pd.DataFrame, path: Path, draw: Callable[[plt.Axes, str], None], xlabel: str, ylabel: str
) -> None:
    """Draw one panel per task with ``draw(ax, task)`` on a log x axis and save the figure."""
    tasks = list(dict.fromkeys(runs["task"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.2), squeeze=False)
    for ax, name in zip(axes[0], tasks, strict=True):
        draw(ax, name)
        ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    save_figure(fig, path)


def plot_curves(runs: pd.DataFrame, histories: dict, path: Path) -> None:
    """Plot accuracy vs cumulative uplink activation bytes: fp32 and every setting at λ = 0."""

    def draw(ax: plt.Axes, name: str) -> None:
        for row in runs[(runs["task"] == name) & (runs["correction"] == 0)].itertuples():
            history = histories[(name, row.codec, 0.0)]
            label = f"{row.codec} ({row.uplink_ratio:.0f}x)"
            ax.plot(history["activation_bytes"] / 1e6, history["accuracy"], label=label)

    xlabel, ylabel = "cumulative uplink activation MB (log)", "test accuracy (compressed)"
    _task_panels(runs, path, draw, xlabel, ylabel)


def plot_tradeoff(runs: pd.DataFrame, path: Path) -> None:
    """Plot final accuracy vs measured uplink ratio, one colour per λ, fp32 as a line."""

    def draw(ax: plt.Axes, name: str) -> None:
        subset = runs[runs["task"] == name]
        base = subset[subset["codec"] == BASELINE]["final_accuracy"].iloc[0]
        ax.axhline(base, color="black", lw=1, label="fp32")
        ax.axhline(base - 0.01, color="black", lw=0.5, ls="--", label="fp32 - 1 pp")
        for lam, group in subset[subset["codec"] != BASELINE].groupby("correction"):
            ax.scatter(group["uplink_ratio"], group["final_accuracy"], label=f"λ = {lam:g}", s=18)

    xlabel, ylabel = "measured uplink ratio vs fp32 (log)", "final test accuracy"
    _task_panels(runs, path, draw, xlabel, ylabel)


def labelled_history(job: Job, history: pd.DataFrame) -> pd.DataFrame:
    """Return a run's history with its task, codec and correction as columns."""
    return history.assign(task=job.entry["task"], codec=job.uplink, correction=job.correction)


def train(
    jobs: list[Job], bench: dict, workers: int, out: Path
) -> list[tuple[pd.DataFrame, float, dict]]:
    """Train every job in ``workers`` processes; return ``_train``'s outputs in job order.

    ``out/histories.csv`` is rewritten after every run that finishes (in job order), so a
    benchmark that stops part-way keeps the histories of the runs it finished.
    """
    outputs: list[tuple[pd.DataFrame, float, dict]] = []
    finished: list[pd.DataFrame] = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(_train, [(job, bench) for job in jobs])
        for job, output in zip(jobs, results, strict=True):
            outputs.append(output)
            finished.append(labelled_history(job, output[0]))
            pd.concat(finished, ignore_index=True).to_csv(out / "histories.csv", index=False)
            print(f"finished {job.entry['task']} {job.uplink} λ = {job.correction:g}", flush=True)
    return outputs


def timing_table(jobs: list[Job], outputs: list, bench: dict) -> pd.DataFrame:
    """Time every task's grid on the bottom its fp32 run trained (`timing`, one table)."""
    tables = []
    for job, (_, _, state) in zip(jobs, outputs, strict=True):
        if job.uplink == BASELINE:
            task = task_config(job.entry, bench["seed"])
            tables.append(timing(task, state, job.entry["grid"], bench))
    return pd.concat(tables, ignore_index=True)


def select_grid(tasks: list[dict], specs: list[str]) -> None:
    """Keep only the grid settings in ``specs`` (each must be in some task's grid), no sweep."""
    unknown = set(specs) - {spec for entry in tasks for spec in entry["grid"]}
    if unknown:
        raise SystemExit(f"--grid {sorted(unknown)} not in the config's grids: add it there first")
    for entry in tasks:
        entry["grid"] = [spec for spec in entry["grid"] if spec in specs]
        entry["sweep"] = []


def check_sweeps(tasks: list[dict]) -> None:
    """Refuse a sweep setting that is not also in its task's grid (the ablation's λ = 0 run)."""
    for entry in tasks:
        missing = [spec for spec in entry["sweep"] if spec not in entry["grid"]]
        if missing:
            raise SystemExit(
                f"{entry['task']}: sweep {missing} not in its grid, which runs them at λ = 0 "
                "for the ablation: add them to the grid"
            )


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the benchmark; return the runs table (the timing table with ``--timing-only``)."""
    parser = config_parser(__doc__, DEFAULT_CONFIG)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--timing-only", action="store_true", help="train only fp32; write the timing"
    )
    parser.add_argument("--seed", type=int, help="the config's seed replaced by this one")
    parser.add_argument("--task", action="append", help="only this task of the config (repeatable)")
    parser.add_argument(
        "--grid", action="append", help="only this grid setting, no sweep (repeatable)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    config = load_config(args)
    bench = config["bench"]
    if args.seed is not None:
        bench["seed"] = args.seed
    if args.task:
        bench["tasks"] = [entry for entry in bench["tasks"] if entry["task"] in args.task]
    if args.grid:
        select_grid(bench["tasks"], args.grid)
    check_sweeps(bench["tasks"])
    jobs = plan(bench, baselines_only=args.timing_only)
    out = output_dir("bench_fedlite", args.results)
    outputs = train(jobs, bench, args.workers, out)
    timings = timing_table(jobs, outputs, bench)
    timings.to_csv(out / "timing.csv", index=False)
    write_env(out, config=config, quick=args.quick, timing_only=args.timing_only)
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        if not args.timing_only:
            runs, histories = summarize(jobs, outputs)
            runs.to_csv(out / "runs.csv", index=False)
            ablations = ablation(runs, bench)
            ablations.to_csv(out / "ablation.csv", index=False)
            plot_curves(runs, histories, out / "accuracy_vs_bytes.png")
            plot_tradeoff(runs, out / "accuracy_vs_ratio.png")
            print(runs.to_string(index=False))
            print(ablations.to_string(index=False))
        print(timings.to_string(index=False))
    print(f"results in {out}")
    return timings if args.timing_only else runs


if __name__ == "__main__":
    main()
