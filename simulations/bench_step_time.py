"""Benchmark: the framework's own time per client and step of an in-process SL step.

Usage: ``python -m simulations.bench_step_time [--clients 10 100] [--threads 1 2] [--steps 30]
[--max-batch 16] [--uplink identity] [--downlink identity] [--quick]``

For each thread count and client count K, one `ParallelSplitLearning` run on
the `InProcessGrid` (``every_epoch`` sync: one round trip per step, messages
measured as in every run) is timed step by step, and right after each of its
steps, in the same process, one step of each competitor:

- **compute**: what SL cannot avoid, in plain PyTorch: K bottoms (one per
  client, each with its own SGD) forward on their slices, the top on the union,
  the backward through all of them and the K + 1 optimizer steps;
- **cut**: the same in plain PyTorch, split at the cut layer, as SL must: each
  bottom's output detached into a leaf, the top's backward filling the leaves'
  gradients, then one backward per bottom. ``cut - compute`` is what
  splitting itself costs torch;
- **codec**: encoding and decoding each client's activations (``--uplink``)
  and gradient (``--downlink``);
- **union**: the unsplit model trained on the union batch (forward, backward, SGD);
- **echo**: Flower's floor, an echo ClientApp returning a payload of the
  activations' size, one round trip per client;
- **bare**: split learning with nothing but the messages (`simulations.bare_split`):
  the same models, data and round trips, with the clients' state in this
  process's memory and no checks, codecs, screens, sizes or saved state.

The framework's own time of a step is ``SL step - compute - codec``; divided
by K it is the figure of issue 23 (goal: at most 0.5 ms at batch 16, one
thread). Its floor, what any SL on Flower pays beyond compute and codecs, is
``echo + cut - compute`` (Flower's round trip and torch's cost of the cut);
``bare - cut`` is that floor plus the least glue SL needs (column ``bare_*``).
The time spent measuring message sizes (`message_nbytes`) inside the SL step
is recorded too (goal: at most 5 % of the step). Every segment is
timed in wall time and in CPU time of the process (all its threads): on a
shared machine the wall time also counts waiting for a core, so the goal is
judged on CPU time. Medians over the steps after ``--warmup``. Writes
``runs.csv`` (one row per threads x clients), ``steps.csv`` (every step),
``step_time.png`` and ``env.json``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from flwr.app import ArrayRecord, Context, Message, RecordDict  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from torch import nn  # noqa: E402

import flwr_split.metrics.traffic as traffic  # noqa: E402
from flwr_split.client.app import app  # noqa: E402
from flwr_split.codecs import CodecContext, get_codec  # noqa: E402
from flwr_split.server.nodes import exchange  # noqa: E402
from flwr_split.tasks import TaskConfig, build_model, load_task_data  # noqa: E402
from flwr_split.testing.inprocess import InProcessGrid  # noqa: E402
from flwr_split.wire.arrays import from_array, to_array  # noqa: E402
from simulations.bare_split import BareSplit  # noqa: E402
from simulations.common import output_dir, save_figure, torch_threads, write_env  # noqa: E402
from strategies.parallel import ParallelSplitLearning  # noqa: E402

GOAL_FRAMEWORK_MS = 0.5
"""Issue 23: framework time per client and step, batch 16, one thread."""
GOAL_SIZE_SHARE = 0.05
"""Issue 23: share of the step spent measuring message sizes."""
LR, MOMENTUM = 0.05, 0.9


def _batches(clients: int, batch: int, rng: np.random.Generator) -> list[torch.Tensor]:
    train, _ = load_task_data(TaskConfig())
    idx = rng.choice(len(train), size=clients * batch, replace=False)
    return list(torch.from_numpy(train.x[idx]).split(batch))


def compute_step(
    clients: int, batch: int, split: bool = False
) -> Callable[[np.random.Generator], None]:
    """Return one step of what SL cannot avoid: K bottoms, the union top, K + 1 SGD steps.

    With ``split``, the bottoms' outputs are detached into leaves, the top's
    backward stops at them and each bottom then back-propagates its leaf's
    gradient (one autograd call per bottom, as in SL).
    """
    bottoms, top = [], None
    for _ in range(clients):
        bottom, top = build_model(TaskConfig())
        bottoms.append(bottom)
    assert top is not None
    optimizers = [torch.optim.SGD(m.parameters(), LR, MOMENTUM) for m in (*bottoms, top)]

    def step(rng: np.random.Generator) -> None:
        chunks = _batches(clients, batch, rng)
        labels = torch.from_numpy(rng.integers(0, 10, clients * batch))
        outputs = [bottom(x) for bottom, x in zip(bottoms, chunks, strict=True)]
        leaves = [out.detach().requires_grad_() for out in outputs] if split else outputs
        nn.functional.cross_entropy(top(torch.cat(leaves)), labels).backward()
        if split:
            for out, leaf in zip(outputs, leaves, strict=True):
                out.backward(leaf.grad)
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad()

    return step


def union_step(clients: int, batch: int) -> Callable[[np.random.Generator], None]:
    """Return one step of the unsplit model on the union batch (forward, backward, SGD)."""
    model = nn.Sequential(*build_model(TaskConfig()))
    optimizer = torch.optim.SGD(model.parameters(), LR, MOMENTUM)

    def step(rng: np.random.Generator) -> None:
        x = torch.cat(_batches(clients, batch, rng))
        labels = torch.from_numpy(rng.integers(0, 10, clients * batch))
        nn.functional.cross_entropy(model(x), labels).backward()
        optimizer.step()
        optimizer.zero_grad()

    return step


def codec_step(
    clients: int, batch: int, uplink: str, downlink: str
) -> Callable[[np.random.Generator], None]:
    """Return one step of the codecs: encode and decode every client's activations and gradient.

    The activations are the bottom's on real samples, computed once (untimed);
    the gradients stand in as the activations minus their mean (signed).
    """
    bottom, _ = build_model(TaskConfig())
    with torch.no_grad():
        acts = [bottom(x) for x in _batches(clients, batch, np.random.default_rng(1))]
    grads = [a - a.mean() for a in acts]
    up, down = get_codec(uplink), get_codec(downlink)

    def step(rng: np.random.Generator) -> None:
        for act, grad in zip(acts, grads, strict=True):
            ctx = CodecContext(seed=int(rng.integers(2**31)))
            up.decode(up.encode(act, ctx), ctx)
            down.decode(down.encode(grad, ctx), ctx)

    return step


def echo_client_app() -> ClientApp:
    """Return a ClientApp that answers ``train.echo`` with the arrays it received."""
    echo = ClientApp()

    @echo.train("echo")
    def reply(message: Message, context: Context) -> Message:
        return Message(RecordDict({"acts": message.content["acts"]}), reply_to=message)

    return echo


def echo_step(clients: int, floats_per_client: int) -> Callable[[np.random.Generator], None]:
    """Return one step of Flower's floor: a round trip per client of that many floats.

    The arrays are written and read with the library's `to_array` and
    `from_array` (the same bytes as Flower's ``Array(ndarray)`` and
    ``Array.numpy()``, which go through ``np.save`` and ``np.load`` and cost
    more than the round trip itself), so the floor holds only Flower's part.
    """
    grid = InProcessGrid(echo_client_app(), clients)
    payload = np.zeros(floats_per_client, np.float32)

    def step(_rng: np.random.Generator) -> None:
        messages = [
            Message(RecordDict({"acts": ArrayRecord({"v": to_array(payload)})}), node, "train.echo")
            for node in grid.get_node_ids()
        ]
        for reply in exchange(grid, messages, timeout=60).values():
            from_array(reply.content["acts"]["v"])

    return step


def _clocks() -> np.ndarray:
    """Wall and CPU seconds (all threads of this process) now."""
    return np.array([time.perf_counter(), time.process_time()])


def _columns(name: str, seconds: np.ndarray) -> dict[str, float]:
    return {f"{name}_s": float(seconds[0]), f"{name}_cpu_s": float(seconds[1])}


def measure(
    clients: int, batch: int, steps: int, uplink: str, downlink: str
) -> list[dict[str, float]]:
    """Run the SL steps, each followed by one step of every competitor; one row per step."""
    competitors = {
        "compute": compute_step(clients, batch),
        "cut": compute_step(clients, batch, split=True),
        "codec": codec_step(clients, batch, uplink, downlink),
        "union": union_step(clients, batch),
        "echo": echo_step(clients, batch * 1024),
        "bare": BareSplit(clients, batch, LR, MOMENTUM).step,
    }
    strategy = ParallelSplitLearning(
        TaskConfig(), batch_size=batch, eval_every=10**9, uplink=uplink, downlink=downlink
    )
    rng = np.random.default_rng(0)
    rows: list[dict[str, float]] = []
    sizing = np.zeros(2)
    message_nbytes = traffic.message_nbytes

    def timed_nbytes(message: Message) -> int:
        started = _clocks()
        try:
            return message_nbytes(message)
        finally:
            sizing[:] += _clocks() - started

    train_step = strategy.train_step

    def timed(*args: object) -> None:
        sizing[:] = 0.0
        started = _clocks()
        train_step(*args)
        row = _columns("split", _clocks() - started) | _columns("message_size", sizing)
        for name, step in competitors.items():
            started = _clocks()
            step(rng)
            row |= _columns(name, _clocks() - started)
        rows.append(row)

    strategy.train_step = timed  # type: ignore[method-assign]
    traffic.message_nbytes = timed_nbytes
    try:
        strategy.start(InProcessGrid(app, clients), num_epochs=10**6, max_steps=steps)
    finally:
        traffic.message_nbytes = message_nbytes
    return rows


def summarize(steps: pd.DataFrame) -> pd.DataFrame:
    """One row per (threads, clients): medians, framework time per client, size-measuring share.

    Each figure comes in wall time (``*_s``) and CPU time of the process
    (``*_cpu_s``); on a shared machine the wall time also holds the waits for a
    core, so the goal is checked on CPU time.
    """
    for clock in ("", "_cpu"):
        steps = steps.assign(
            **{
                f"framework{clock}_s": steps[f"split{clock}_s"]
                - steps[f"compute{clock}_s"]
                - steps[f"codec{clock}_s"],
                f"size_share{clock}": steps[f"message_size{clock}_s"] / steps[f"split{clock}_s"],
            }
        )
    keys = ["threads", "clients", "batch_per_client"]
    table = steps.groupby(keys).median(numeric_only=True).drop(columns="step").reset_index()
    for clock in ("", "_cpu"):
        table[f"framework{clock}_per_client_ms"] = (
            table[f"framework{clock}_s"] / table["clients"] * 1e3
        )
        floor = table[f"echo{clock}_s"] + table[f"cut{clock}_s"] - table[f"compute{clock}_s"]
        table[f"floor{clock}_per_client_ms"] = floor / table["clients"] * 1e3
        bare = table[f"bare{clock}_s"] - table[f"cut{clock}_s"]
        table[f"bare{clock}_per_client_ms"] = bare / table["clients"] * 1e3
    table["ratio_to_union"] = table["split_s"] / table["union_s"]
    table["ratio_to_compute"] = table["split_s"] / table["compute_s"]
    table["goal_met"] = (table["framework_cpu_per_client_ms"] <= GOAL_FRAMEWORK_MS) & (
        table["size_share_cpu"] <= GOAL_SIZE_SHARE
    )
    return table


def plot(summary: pd.DataFrame, path) -> None:
    """Framework time per client and step, by threads and clients, with the goal."""
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    labels = [
        f"{c} clients\n{t} thread(s)"
        for c, t in zip(summary["clients"], summary["threads"], strict=True)
    ]
    positions = np.arange(len(labels))
    ax.bar(positions - 0.2, summary["framework_per_client_ms"], width=0.4, label="wall")
    ax.bar(positions + 0.2, summary["framework_cpu_per_client_ms"], width=0.4, label="CPU")
    ax.axhline(GOAL_FRAMEWORK_MS, color="red", linestyle="--", label="goal 0.5 ms")
    ax.set_xticks(positions, labels, fontsize=8)
    ax.set_ylabel("ms per client and step")
    ax.legend()
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-batch", type=int, default=16, help="samples per client and step")
    parser.add_argument("--uplink", default="identity")
    parser.add_argument("--downlink", default="identity")
    parser.add_argument("--quick", action="store_true", help="2 and 4 clients, 3 steps, 1 thread")
    parser.add_argument("--results", default="results", help="base folder of the output")
    args = parser.parse_args(argv)
    logging.getLogger("flwr").setLevel(logging.WARNING)
    if args.quick:
        args.clients, args.steps, args.warmup, args.threads = [2, 4], 3, 1, [1]
    rows = []
    with torch_threads(torch.get_num_threads()):  # put the caller's setting back after
        for threads in args.threads:
            torch.set_num_threads(threads)
            for clients in args.clients:
                # fewer samples where a client's share of digits' 1,437 holds < 2 such batches
                batch = max(1, min(args.max_batch, 1437 // clients // 2))
                timed = measure(
                    clients, batch, args.steps + args.warmup, args.uplink, args.downlink
                )
                for step, row in enumerate(timed[args.warmup :], start=args.warmup):
                    rows.append(
                        {"threads": threads, "clients": clients, "batch_per_client": batch}
                        | {"step": step, **row}
                    )
                print(summarize(pd.DataFrame(rows)).iloc[-1].to_dict(), flush=True)
    steps = pd.DataFrame(rows)
    summary = summarize(steps)
    out = output_dir("bench_step_time", args.results)
    steps.to_csv(out / "steps.csv", index=False)
    summary.to_csv(out / "runs.csv", index=False)
    write_env(out, steps=args.steps, uplink=args.uplink, downlink=args.downlink)
    plot(summary, out / "step_time.png")
    print(summary.to_string(index=False))
    print(f"results in {out}")
    return summary


if __name__ == "__main__":
    main()
