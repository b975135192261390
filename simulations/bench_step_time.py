"""Benchmark: in-process SL step time against a pure-PyTorch step on the same union batch.

Usage: ``python -m simulations.bench_step_time [--clients 10 100] [--steps 30] [--max-batch 16]
[--quick]``

For each client count, one `ParallelSplitLearning` run on the `InProcessGrid`
(identity codecs, the default ``every_epoch`` sync: one round trip per step)
is timed per step, and the unsplit model is trained with plain PyTorch on
union batches of the same size. Flower's own floor is measured too: an echo
ClientApp that returns a payload of the activations' size, one round trip per
client. Both run in this process, so the ratio is
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
from flwr.app import Array, ArrayRecord, Context, Message, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from torch import nn  # noqa: E402

from flwr_split.client.app import app  # noqa: E402
from flwr_split.server.nodes import exchange  # noqa: E402
from flwr_split.tasks import TaskConfig, build_model, load_task_data  # noqa: E402
from flwr_split.testing.inprocess import InProcessGrid  # noqa: E402
from simulations.common import output_dir, save_figure, torch_threads, write_env  # noqa: E402
from strategies.parallel import ParallelSplitLearning  # noqa: E402


def time_split_steps(
    num_clients: int, batch_size: int, steps: int, measure_messages: bool = True
) -> list[float]:
    """Seconds per `train_step` of an in-process parallel SL run."""
    strategy = ParallelSplitLearning(
        TaskConfig(), batch_size=batch_size, eval_every=10**9, measure_messages=measure_messages
    )
    times: list[float] = []
    train_step = strategy.train_step

    def timed(*args: object) -> None:
        started = time.perf_counter()
        train_step(*args)
        times.append(time.perf_counter() - started)

    strategy.train_step = timed  # type: ignore[method-assign]
    strategy.start(InProcessGrid(app, num_clients), num_epochs=10**6, max_steps=steps)
    return times


def echo_client_app() -> ClientApp:
    """Return a ClientApp that answers ``train.echo`` with the arrays it received."""
    echo = ClientApp()

    @echo.train("echo")
    def reply(message: Message, context: Context) -> Message:
        return Message(RecordDict({"acts": message.content["acts"]}), reply_to=message)

    return echo


def time_echo_steps(num_clients: int, floats_per_client: int, steps: int) -> list[float]:
    """Seconds per step of Flower's floor: one round trip per client of that many floats."""
    grid = InProcessGrid(echo_client_app(), num_clients)
    payload = np.zeros(floats_per_client, np.float32)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        messages = [
            Message(RecordDict({"acts": ArrayRecord({"v": Array(payload)})}), node, "train.echo")
            for node in grid.get_node_ids()
        ]
        replies = exchange(grid, messages, timeout=60)
        for reply in replies.values():
            reply.content["acts"]["v"].numpy()
        times.append(time.perf_counter() - started)
    return times


def time_torch_steps(
    num_clients: int, batch_size: int, steps: int, per_client_bottom: bool = False
) -> list[float]:
    """Seconds per forward+backward+SGD step of the unsplit model on a union batch.

    With ``per_client_bottom`` the bottom runs on each client's slice separately
    (the compute shape of split learning, without any messaging).
    """
    bottom, top = build_model(TaskConfig())
    model = nn.Sequential(bottom, top)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    union_size = num_clients * batch_size
    train, _ = load_task_data(TaskConfig())
    rng = np.random.default_rng(0)
    times = []
    for _ in range(steps):
        idx = rng.choice(len(train), size=union_size, replace=False)
        x, y = torch.from_numpy(train.x[idx]), torch.from_numpy(train.y[idx])
        started = time.perf_counter()
        optimizer.zero_grad()
        if per_client_bottom:
            logits = top(torch.cat([bottom(chunk) for chunk in x.split(batch_size)]))
        else:
            logits = model(x)
        nn.functional.cross_entropy(logits, y).backward()
        optimizer.step()
        times.append(time.perf_counter() - started)
    return times


def run(
    client_counts: list[int], steps: int, warmup: int, threads: int, max_batch: int = 16
) -> pd.DataFrame:
    """Measure both step times for every client count; return one row per count.

    Each client sends ``max_batch`` samples per step, or fewer where its share
    of digits' 1,437 training samples holds fewer than two such batches.

    The SL run and the per-client bottoms use ``threads`` torch threads (the
    in-process clients get no ``client-threads`` and leave the setting alone);
    the PyTorch union step is timed with one and with ``threads`` threads, and
    the faster is the baseline of the ratio.
    """
    rows = []
    for clients in client_counts:
        batch_size = max(1, min(max_batch, 1437 // clients // 2))
        torch.set_num_threads(threads)
        split = time_split_steps(clients, batch_size, steps + warmup)[warmup:]
        unmeasured = time_split_steps(clients, batch_size, steps + warmup, False)[warmup:]
        split_compute = time_torch_steps(clients, batch_size, steps + warmup, True)[warmup:]
        union_times = {}
        for count in sorted({1, threads}):
            torch.set_num_threads(count)
            union_times[count] = float(
                np.median(time_torch_steps(clients, batch_size, steps + warmup)[warmup:])
            )
        union_threads, torch_step = min(union_times.items(), key=lambda item: item[1])
        echo = time_echo_steps(clients, batch_size * 1024, steps + warmup)[warmup:]
        row = {
            "clients": clients,
            "batch_per_client": batch_size,
            "union_batch": clients * batch_size,
            "steps": len(split),
            "split_step_s": float(np.median(split)),
            "split_no_msg_size_step_s": float(np.median(unmeasured)),
            "torch_step_s": torch_step,
            "torch_threads": union_threads,
            "torch_1_thread_step_s": union_times[1],
            "split_compute_step_s": float(np.median(split_compute)),
            "echo_floor_step_s": float(np.median(echo)),
        }
        row["ratio"] = row["split_step_s"] / torch_step
        row["ratio_no_msg_size"] = row["split_no_msg_size_step_s"] / torch_step
        rows.append(row)
        print(
            f"{clients:4d} clients x {batch_size:2d}: split {row['split_step_s'] * 1e3:7.2f} ms "
            f"({row['split_no_msg_size_step_s'] * 1e3:7.2f} ms without message sizes), "
            f"torch {torch_step * 1e3:6.2f} ms on {union_threads} thread(s) (per-client bottoms "
            f"{row['split_compute_step_s'] * 1e3:6.2f} ms), Flower echo floor "
            f"{row['echo_floor_step_s'] * 1e3:6.2f} ms, ratio {row['ratio']:.2f}x "
            f"({row['ratio_no_msg_size']:.2f}x)",
            flush=True,
        )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-batch", type=int, default=16, help="samples per client and step")
    parser.add_argument("--quick", action="store_true", help="2 and 4 clients, 3 steps")
    parser.add_argument("--results", default="results", help="base folder of the output")
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    if args.quick:
        args.clients, args.steps, args.warmup = [2, 4], 3, 1
    threads = torch.get_num_threads()
    with torch_threads(threads):  # run() changes the setting; put it back after
        frame = run(args.clients, args.steps, args.warmup, threads, args.max_batch)
    out = output_dir("bench_step_time", args.results)
    frame.to_csv(out / "runs.csv", index=False)
    write_env(out, default_threads=threads, steps=args.steps)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    labels = [str(c) for c in frame["clients"]]
    positions = np.arange(len(labels))
    ax.bar(positions - 0.2, frame["ratio"], width=0.4, label="message sizes measured")
    ax.bar(positions + 0.2, frame["ratio_no_msg_size"], width=0.4, label="payload bytes only")
    ax.set_xticks(positions, labels)
    ax.axhline(1.3, color="red", linestyle="--", label="goal 1.3x")
    ax.set_xlabel("clients per step")
    ax.set_ylabel("split step / PyTorch step")
    ax.legend()
    save_figure(fig, out / "step_time.png")
    print(f"results in {out}")
    return frame


if __name__ == "__main__":
    main()
