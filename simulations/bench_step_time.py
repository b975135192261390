"""Benchmark: in-process SL step time against a pure-PyTorch step on the same union batch.

Usage: ``python -m simulations.bench_step_time [--clients 10 100] [--steps 30] [--quick]``

For each client count, one `ParallelSplitLearning` run on the `InProcessGrid`
(identity codecs, the default ``every_epoch`` sync: one round trip per step)
is timed per step, and the unsplit model is trained with plain PyTorch on
union batches of the same size. Both run in this process, so the ratio is
robust to machine noise. Writes ``runs.csv``, ``step_time.png`` and ``env.json``.
"""

from __future__ import annotations

import argparse
import logging
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from flwr_split.app.client_app import app  # noqa: E402
from flwr_split.inprocess import InProcessGrid  # noqa: E402
from flwr_split.tasks import TaskConfig, build_model, load_task_data  # noqa: E402
from simulations.common import output_dir, write_env  # noqa: E402
from strategies.parallel import ParallelSplitLearning  # noqa: E402


def time_split_steps(num_clients: int, batch_size: int, steps: int) -> list[float]:
    """Seconds per `train_step` of an in-process parallel SL run."""
    strategy = ParallelSplitLearning(
        TaskConfig(), batch_size=batch_size, eval_every=10**9, measure_messages=True
    )
    times: list[float] = []
    train_step = strategy.train_step

    def timed(*args: object) -> None:
        started = time.perf_counter()
        train_step(*args)
        times.append(time.perf_counter() - started)

    strategy.train_step = timed  # type: ignore[method-assign]
    strategy.start(
        InProcessGrid(app, num_clients), epochs=10**6, min_nodes=num_clients, max_steps=steps
    )
    return times


def time_torch_steps(union_size: int, steps: int) -> list[float]:
    """Seconds per forward+backward+SGD step of the unsplit model on a union batch."""
    bottom, top = build_model(TaskConfig())
    model = nn.Sequential(bottom, top)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train, _ = load_task_data(TaskConfig())
    rng = np.random.default_rng(0)
    times = []
    for _ in range(steps):
        idx = rng.choice(len(train), size=union_size, replace=False)
        x, y = torch.from_numpy(train.x[idx]), torch.from_numpy(train.y[idx])
        started = time.perf_counter()
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times


def run(client_counts: list[int], steps: int, warmup: int) -> pd.DataFrame:
    """Measure both step times for every client count; return one row per count."""
    rows = []
    for clients in client_counts:
        batch_size = max(1, min(16, 1437 // clients // 2))
        split = time_split_steps(clients, batch_size, steps + warmup)[warmup:]
        torch_times = time_torch_steps(clients * batch_size, steps + warmup)[warmup:]
        rows.append(
            {
                "clients": clients,
                "batch_per_client": batch_size,
                "union_batch": clients * batch_size,
                "steps": len(split),
                "split_step_s": float(np.median(split)),
                "torch_step_s": float(np.median(torch_times)),
            }
        )
        row = rows[-1]
        row["ratio"] = row["split_step_s"] / row["torch_step_s"]
        print(
            f"{clients:4d} clients x {batch_size:2d}: split {row['split_step_s'] * 1e3:8.2f} ms, "
            f"torch {row['torch_step_s'] * 1e3:7.2f} ms, ratio {row['ratio']:.2f}x",
            flush=True,
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 and 4 clients, 3 steps")
    parser.add_argument("--results", default="results", help="base folder of the output")
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    if args.quick:
        args.clients, args.steps, args.warmup = [2, 4], 3, 1
    frame = run(args.clients, args.steps, args.warmup)
    out = output_dir("bench_step_time", args.results)
    frame.to_csv(out / "runs.csv", index=False)
    write_env(out, threads=torch.get_num_threads(), steps=args.steps)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([str(c) for c in frame["clients"]], frame["ratio"])
    ax.axhline(1.3, color="red", linestyle="--", label="goal 1.3x")
    ax.set_xlabel("clients per step")
    ax.set_ylabel("split step / PyTorch step")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "step_time.png", dpi=110)
    print(f"results in {out}")
    return frame


if __name__ == "__main__":
    main()
