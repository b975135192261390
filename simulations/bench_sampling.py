"""Benchmark: global sampling (UGS, LDS) against fixed local sampling (FPLS, FLS).

Usage: ``python -m simulations.bench_sampling [--config simulations/configs/bench_sampling.toml]
[--quick]``

For every task, client count K, global batch B, partition (IID, mild and
severe extended Dirichlet) and sampler, the model with a GroupNorm client side
trains on the union batches the sampler plans, client k serving its own
per-epoch permutation exactly as `flwr_split.client.session` does. That is the
computation of `ParallelSplitLearning` with ``sync="every_step"`` (one PSL
step is one centralized step on the union batch; the `crosscheck` cell runs
it on the in-process grid too and records both accuracies). Per run it
records test accuracy, mean batch deviation, steps per epoch and the
simulated training time of the schedules without and with stragglers
(`flwr_split.metrics.profiles.planned_step_seconds`). Every cell runs once per
seed of ``seeds`` (partition, stragglers, model and schedules all follow it);
the optimizer is the config's ``optimizer``, ``lr`` and ``momentum``
(`simulations.common.bench_optimizer`). Writes ``runs.csv``, ``summary.csv``
(mean and standard deviation over the seeds), ``histories.csv``,
``crosscheck.csv``, ``table.md`` (samplers x partitions x K, means over the
seeds), ``accuracy_vs_time.png`` (first seed) and ``env.json`` under
``results/bench_sampling/<timestamp>/``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from flwr_split.common.seeds import epoch_seed  # noqa: E402
from flwr_split.metrics.profiles import ProfileConfig, planned_step_seconds, straggler_extra  # noqa: E402
from flwr_split.sampling import batch_deviation, class_shares, get_sampler  # noqa: E402
from flwr_split.tasks import TaskConfig, build_model, load_task_data  # noqa: E402
from flwr_split.testing.replay import EpochReplay  # noqa: E402
from simulations.common import (  # noqa: E402
    bench_optimizer,
    config_parser,
    load_config,
    output_dir,
    run_split,
    save_figure,
    write_env,
)

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "bench_sampling.toml"
CENTRALIZED = "centralized"


def make_task(bench: dict, task: str, partition: str, seed: int) -> TaskConfig:
    """Task config of a partition preset ``[scheme, classes per client, alpha]``.

    Without a preset of that name, the IID split (the centralized baseline's,
    whether or not the grid has IID cells).
    """
    if partition not in bench["partitions"]:
        return TaskConfig(task=task, group_norm=True, seed=seed)
    scheme, classes, alpha = bench["partitions"][partition]
    return TaskConfig(
        task=task,
        partitioner=scheme,
        classes_per_client=int(classes),
        dirichlet_alpha=float(alpha),
        group_norm=True,
        seed=seed,
    )


class StepTimes:
    """Simulated step times of a cell's schedules: none, fixed and exponential stragglers.

    Stragglers (a seeded fraction of the clients) add ``lambda`` times the
    median UGS step time of the cell to every step they take part in; ``seed``
    chooses them and draws the exponential delays.
    """

    def __init__(self, bench: dict, counts: np.ndarray, batch_size: int, seed: int) -> None:
        self.bench = bench
        self.stragglers = ProfileConfig(
            straggler_fraction=bench["straggler_fraction"], seed=seed
        ).stragglers(counts.size)
        ugs = get_sampler("ugs").plan(counts, batch_size, seed=0)
        self.extra_s = bench["straggler_latency"] * float(np.median(self.seconds(ugs)))
        self.rng = np.random.default_rng(seed)

    def seconds(self, plan: np.ndarray, delay: str | None = None) -> np.ndarray:
        """Per-step seconds of ``plan``; ``delay``: ``None``, ``"fixed"`` or ``"exponential"``."""
        extra = None
        if delay is not None:

            def extra() -> np.ndarray:
                return straggler_extra(self.stragglers, self.extra_s, delay, self.rng)

        bench = self.bench
        return planned_step_seconds(
            plan,
            bench["per_sample_s"],
            bench["step_latency_s"],
            bench["server_per_sample_s"],
            extra,
        )

    def delays(self) -> np.ndarray:
        """Each client's expected step latency (what LDS's tilt gets)."""
        return self.bench["step_latency_s"] + self.stragglers * self.extra_s


def accuracy(model: nn.Module, task: TaskConfig) -> float:
    """Test accuracy of the whole model on the task's test set."""
    _, test = load_task_data(task)
    with torch.no_grad():
        logits = model(torch.from_numpy(test.x))
    return float((logits.argmax(1).numpy() == test.y).mean())


def train_cell(job: dict) -> tuple[dict, pd.DataFrame]:
    """Train one (task, partition, K, B, sampler) cell; return its row and per-epoch history."""
    torch.set_num_threads(1)
    bench, task = job["bench"], job["task"]
    clients, batch_size, spec = job["clients"], job["batch_size"], job["sampler"]
    started = time.perf_counter()
    replay = EpochReplay(task, clients)
    counts = replay.counts
    pooled = class_shares(np.concatenate([s.y for s in replay.shards]), task.definition.num_classes)
    times = StepTimes(bench, counts, batch_size, task.seed)
    sampler = get_sampler("ugs" if spec == CENTRALIZED else spec)
    sampler.set_delays(times.delays())
    bottom, top = build_model(task)
    model = nn.Sequential(bottom, top)
    optimizer = bench_optimizer(bench).build(model.parameters())
    deviations, steps, active, history = [], [], [], []
    clock = {"none": 0.0, "fixed": 0.0, "exponential": 0.0}
    for epoch in range(job["epochs"]):
        plan = sampler.plan(counts, batch_size, seed=epoch_seed(task.seed, epoch))
        for batch in replay.batches(plan, epoch):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(
                model(torch.from_numpy(batch.x)), torch.from_numpy(batch.y)
            )
            loss.backward()
            optimizer.step()
            shares = class_shares(batch.y, task.definition.num_classes)
            deviations.append(batch_deviation(shares, pooled)["l1"])
        steps.append(len(plan))
        active.append(float((plan > 0).sum(axis=1).mean()))
        for delay in clock:
            clock[delay] += float(times.seconds(plan, None if delay == "none" else delay).sum())
        history.append({"epoch": epoch + 1, "accuracy": accuracy(model, task), **clock})
    row = {
        "task": task.task,
        "partition": job["partition"],
        "clients": clients,
        "k_effective": int(np.count_nonzero(counts)),
        "batch_size": batch_size,
        "sampler": spec,
        "seed": task.seed,
        "epochs": job["epochs"],
        "accuracy": history[-1]["accuracy"],
        "best_accuracy": max(h["accuracy"] for h in history),
        "mean_deviation": float(np.mean(deviations)),
        "steps_per_epoch": float(np.mean(steps)),
        "mean_active_clients": float(np.mean(active)),
        "sim_time_s": clock["none"],
        "sim_time_stragglers_s": clock["fixed"],
        "sim_time_exp_stragglers_s": clock["exponential"],
        "wall_s": time.perf_counter() - started,
    }
    frame = pd.DataFrame(history).rename(
        columns={
            "none": "sim_time_s",
            "fixed": "sim_time_stragglers_s",
            "exponential": "sim_time_exp_stragglers_s",
        }
    )
    keys = ("task", "partition", "clients", "batch_size", "sampler", "seed")
    return row, frame.assign(**{k: row[k] for k in keys})


def jobs(bench: dict) -> list[dict]:
    """Every cell of the grid and seed, with the LDS variants and the centralized baseline.

    ``centralized = false`` in the config leaves the baseline out.
    """
    cells = []
    for entry in bench["tasks"]:
        for batch_size in bench["batch_sizes"]:
            base = {"bench": bench, "epochs": entry["epochs"], "batch_size": batch_size}
            variants = bench["lds_variants"] if batch_size == max(bench["batch_sizes"]) else []
            for seed in bench["seeds"]:
                if bench.get("centralized", True):
                    iid = make_task(bench, entry["task"], "iid", seed)
                    central = {"task": iid, "partition": "iid", "clients": 1}
                    cells.append({**base, **central, "sampler": CENTRALIZED})
                for partition in bench["partitions"]:
                    task = make_task(bench, entry["task"], partition, seed)
                    for clients in bench["clients"]:
                        for spec in [*bench["samplers"], *variants]:
                            cell = {"task": task, "partition": partition, "clients": clients}
                            cells.append({**base, **cell, "sampler": spec})
    return cells


def crosscheck(bench: dict) -> pd.DataFrame:
    """Run one cell through `ParallelSplitLearning` on the in-process grid and by replay."""
    check = bench["crosscheck"]
    task = make_task(bench, check["task"], check["partition"], bench["seeds"][0])
    job = {"bench": bench, "task": task, **{k: v for k, v in check.items() if k != "task"}}
    replayed, _ = train_cell(job)
    started = time.perf_counter()
    _, result = run_split(
        task,
        clients=check["clients"],
        epochs=check["epochs"],
        batch_size=check["batch_size"],
        sampler=check["sampler"],
        sync="every_step",
        eval_every=10**9,
        optimizer=bench_optimizer(bench),
    )
    return pd.DataFrame(
        [
            {
                **{
                    k: replayed[k]
                    for k in ("task", "partition", "clients", "batch_size", "sampler")
                },
                "epochs": check["epochs"],
                "replay_accuracy": replayed["accuracy"],
                "inprocess_accuracy": result.final_accuracy,
                "replay_mean_deviation": replayed["mean_deviation"],
                "inprocess_mean_deviation": float(result.steps["deviation_l1"].mean()),
                "replay_wall_s": replayed["wall_s"],
                "inprocess_wall_s": time.perf_counter() - started,
            }
        ]
    )


def markdown(table: pd.DataFrame) -> str:
    """Render a table with a flat or two-level column index as a Markdown table."""
    names = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in table.columns]
    lines = [
        "| " + " | ".join([str(table.index.name or ""), *names]) + " |",
        "|" + "---|" * (len(names) + 1),
    ]
    for label, values in table.iterrows():
        lines.append("| " + " | ".join([str(label), *(f"{v:.2f}" for v in values)]) + " |")
    return "\n".join(lines)


SUMMARY_VALUES = ("accuracy", "sim_time_s", "sim_time_stragglers_s", "sim_time_exp_stragglers_s")
"""Columns of ``runs.csv`` that ``summary.csv`` averages over the seeds."""


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over the seeds of every cell's `SUMMARY_VALUES`."""
    keys = ["task", "partition", "clients", "batch_size", "sampler"]
    grouped = runs.groupby(keys, sort=False)
    summary = grouped.agg(
        seeds=("seed", "count"),
        **{
            f"{column}_{stat}": (column, stat)
            for column in SUMMARY_VALUES
            for stat in ("mean", "std")
        },
    )
    return summary.reset_index()


def paper_table(runs: pd.DataFrame) -> str:
    """Markdown accuracy tables like the paper's: samplers x (partition, K), per task and B.

    Each entry is the mean over the seeds.
    """
    blocks = []
    main = runs[runs["sampler"] != CENTRALIZED]
    for (task, batch_size), group in main.groupby(["task", "batch_size"], sort=False):
        table = group.pivot_table(
            index="sampler", columns=["partition", "clients"], values="accuracy", sort=False
        )
        central = runs[
            (runs["task"] == task)
            & (runs["batch_size"] == batch_size)
            & (runs["sampler"] == CENTRALIZED)
        ]["accuracy"]
        table = (100 * table).round(2)
        note = f" (centralized: {100 * central.mean():.2f})" if len(central) else ""
        header = f"### {task}, B = {batch_size}{note}"
        blocks.append(f"{header}\n\n{markdown(table)}\n")
    return "\n".join(blocks)


def plot(histories: pd.DataFrame, path: Path, clients: int, batch_size: int) -> None:
    """Accuracy vs simulated time with stragglers, severe non-IID, per task (first seed)."""
    histories = histories[histories["seed"] == histories["seed"].iloc[0]]
    tasks = list(histories["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        subset = histories[
            (histories["task"] == task)
            & (histories["partition"] == "severe")
            & (histories["clients"] == clients)
            & (histories["batch_size"] == batch_size)
        ]
        for sampler, run in subset.groupby("sampler", sort=False):
            ax.plot(run["sim_time_stragglers_s"], run["accuracy"], marker=".", label=sampler)
        ax.set_title(f"{task}, severe non-IID, K={clients}, B={batch_size}, 20% stragglers")
        ax.set_xlabel("simulated training time with stragglers (s)")
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = config_parser(__doc__, DEFAULT_CONFIG)
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    config = load_config(args)
    bench = config["bench"]
    rows, frames = [], []
    for job in jobs(bench):
        row, frame = train_cell(job)
        rows.append(row)
        frames.append(frame)
        print(
            {k: row[k] for k in ("task", "partition", "clients", "batch_size", "sampler", "seed")},
            f"acc {row['accuracy']:.4f} dev {row['mean_deviation']:.3f}",
            f"sim {row['sim_time_s']:.1f}s, stragglers {row['sim_time_stragglers_s']:.1f}s",
            f"exp {row['sim_time_exp_stragglers_s']:.1f}s, wall {row['wall_s']:.1f}s",
            flush=True,
        )
    runs, histories = pd.DataFrame(rows), pd.concat(frames, ignore_index=True)
    checks = crosscheck(bench)
    out = output_dir("bench_sampling", args.results)
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarize(runs)
    summary.to_csv(out / "summary.csv", index=False)
    histories.to_csv(out / "histories.csv", index=False)
    checks.to_csv(out / "crosscheck.csv", index=False)
    (out / "table.md").write_text(paper_table(runs))
    plot(histories, out / "accuracy_vs_time.png", max(bench["clients"]), max(bench["batch_sizes"]))
    write_env(out, config=config, quick=args.quick, threads=torch.get_num_threads())
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        print(runs.to_string(index=False))
        print(summary.to_string(index=False))
        print(checks.to_string(index=False))
    print(f"results in {out}")
    return runs


if __name__ == "__main__":
    main()
