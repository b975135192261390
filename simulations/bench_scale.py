"""Benchmark: SL step time and peak memory at N virtual SuperNodes, beside Flower's echo floor.

Usage: ``python -m simulations.bench_scale [--nodes 10 100 300 1000] [--participants 10 100]
[--steps 8] [--client-cpus 1] [--shaped-echo] [--compute-echo] [--quick]``, or a training run:
``python -m simulations.bench_scale --nodes 10000 --participants 100 --epochs 2 [--task mnist]
[--batch-size 6] [--eval-every 20]``

For every N, one private loopback SuperLink (``--simulation``, Ray,
``--client-cpus`` CPUs per ClientApp actor: 1 gives 2 actors on 2 cores)
runs, for every K <= N, two Apps through ``flwr run``:

- **flwr-split** (this repository): digits, ``sampler="fixed:clients=K"``
  (K clients per step, one round trip each), batch 2 per client, ``max-steps``
  steps; the ServerApp's ``<run>_steps.csv`` gives each step's wall time, the
  server's own time and the compute time the clients report;
- **echo** (``simulations/echo_app``): the same node wait, warm-up round to all
  N nodes and, step by step, as many messages as the SL run sent (its
  ``messages`` column) through the same push/pull loop, with empty content and
  handlers that do nothing: Flower's own floor. It runs twice: back to back
  (``echo``), and ``echo-paced``, idling before each step as long as the SL
  server computed in that step (its ``server_s``, untimed). Flower's
  simulation engine picks up new messages every 0.1 s, so a round trip's wait
  depends on how long the ServerApp was busy before it (the same echo step
  took 0.198 s after a 30 ms pause, 0.228 s after none, 0.250 s after 80 ms:
  ``docs/scale.md``); the paced echo is the floor under the SL run's timing.
  With ``--shaped-echo`` a third, paced run (``echo-sl``) sends and answers
  the records of an SL step and keeps an SL client's ``context.state``, with
  no work: what Flower's transport of SL-shaped messages costs. With
  ``--compute-echo`` a paced run of empty messages (``echo-compute``) whose
  handlers compute (torch, one thread) for the SL run's median client compute
  per message before they reply: Flower's floor when its clients compute as
  long as ours. Both flags together add ``echo-sl-compute``: SL-shaped records
  and the same compute.

With ``--epochs E`` the SL run trains instead: E whole epochs of ``--task``
(MNIST by default) with ``sampler="fixed:clients=K"``, ``--batch-size`` samples
per client and step (6: at N = 10,000 every client holds 6 MNIST training
samples, so each group of K clients takes one step and an epoch has N / K
steps), the optimizer and learning rate of ``simulations/configs/mnist.toml``,
an evaluation on every client's test shard every ``--eval-every`` steps and at
the end; the echo runs replay its training steps. ``runs.csv`` then also has the
first and last evaluation (step, accuracy).

A step's time is the median over steps 1.. (step 0 pays first-use costs). The
compute of a step is ``server_s + client_compute_s / actors`` (the clients'
reported compute runs on ``actors`` actors at once). The goal of issue 4 is
``sl_step_s <= 1.2 * echo_step_s + compute_s`` at N = 100, with the paced echo
(``overhead_ratio``; ``overhead_ratio_unpaced`` uses the back-to-back one). Against the
computing echoes the floor is the step minus the clients' reported compute per actor
(``echo_compute_floor_s``, ``overhead_ratio_compute_matched``, and the same with
``sl_compute``). Issue 23 compares whole steps: ``step_ratio_compute`` (``_sl_compute``) is
``sl_step_s``, which includes the server's compute, over the computing echo's step plus the pause
that stands for it (``echo_compute_paced_step_s``), goal <= 1.1. Peak RSS (and PSS) is the sum over
the SuperLink and every process it started, sampled every 0.25 s during each ``flwr run``;
``runs.csv`` also has each kind of process' peak (``peak_rss_gb_<kind>``:
`simulations.process_memory.PROCESS_KINDS`) and the 1-minute load average before and after
each run. Writes ``runs.csv``, ``summary.csv``, ``steps.csv``, ``scale.png`` and ``env.json``.
"""

from __future__ import annotations

import argparse
import os
import time
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from flwr_split.launch.simulation import SimulationSuperLink  # noqa: E402
from simulations.common import ECHO_APP, ROOT, output_dir, save_figure, write_env  # noqa: E402
from simulations.process_memory import PeakMemory  # noqa: E402

SL_BATCH = 2
"""Samples per client and step in the timing runs (without ``--epochs``)."""
TRAIN_BATCH = 6
"""Samples per client and step in the training runs: MNIST's 60,000 over 10,000 clients."""
TRAINING_SETTINGS = ROOT / "simulations" / "configs" / "mnist.toml"
"""Where the training runs take their optimizer and learning rate from."""
GOAL_FACTOR = 1.2
"""Issue 4: an SL step may cost at most 1.2x the echo step plus the measured compute."""
GOAL_STEP_RATIO = 1.1
"""Issue 23: an SL step may take at most 1.1x the step of an echo whose clients compute as long."""


def training(task: str, epochs: int, batch: int, eval_every: int) -> dict[str, object]:
    """Return the run-config keys of a training run: whole epochs, evaluated, tuned optimizer."""
    tuned = tomllib.loads(TRAINING_SETTINGS.read_text())["bench"]["run-config"]
    return {
        "task": task,
        "epochs": epochs,
        "batch-size": batch,
        "eval-every": eval_every,
        "optimizer": tuned["optimizer"],
        "lr": tuned["lr"],
    }


def sl_run_config(
    nodes: int, participants: int, steps: int, out: Path, trained: dict | None = None
) -> dict[str, object]:
    """Return the SL App's ``--run-config`` for one (N, K) cell: ``steps`` steps or ``trained``."""
    timed = {"batch-size": SL_BATCH, "max-steps": steps, "eval-every": 10**6}
    timed["epochs"] = steps  # at least one step per epoch, so max-steps ends the run
    return {
        "min-nodes": nodes,
        "sampler": f"fixed:clients={participants}",
        **(trained or timed),
        "output-dir": str(out),
        "run-name": f"sl_n{nodes}_k{participants}",
    }


ECHO_RUNS = {
    "echo": (False, "empty", False),
    "echo-paced": (True, "empty", False),
    "echo-sl": (True, "sl", False),
    "echo-compute": (True, "empty", True),
    "echo-sl-compute": (True, "sl", True),
}
"""Echo runs by app name: (paced like the SL run, payload, clients compute like the SL run's)."""


def echo_runs(shaped: bool, computing: bool) -> tuple[str, ...]:
    """Return the echo runs to make: the empty ones, plus SL-shaped and computing ones if asked."""
    return tuple(
        app
        for app, (_, payload, computes) in ECHO_RUNS.items()
        if (shaped or payload != "sl") and (computing or not computes)
    )


def echo_run_config(
    app: str, cell: tuple[int, int, int], sl_steps: pd.DataFrame, out: Path
) -> dict:
    """Return the echo App's ``--run-config``: the SL run's messages (pauses, compute) per step.

    ``cell`` is (N, K, samples per client and step of the SL run).
    """
    nodes, participants, batch = cell
    paced, payload, computes = ECHO_RUNS[app]
    pauses = sl_steps["server_s"].fillna(0.0) if paced else []
    timed = sl_steps[sl_steps["step"] >= 1]
    busy = float((timed["client_compute_s"] / timed["messages"]).median()) if computes else 0.0
    return {
        "min-nodes": nodes,
        "participants": participants,
        "messages": ",".join(str(count) for count in sl_steps["messages"]),
        "pauses": ",".join(f"{seconds:.4f}" for seconds in pauses),
        "payload": payload,
        "busy": busy,
        "batch-size": batch,
        "output-dir": str(out),
        "run-name": f"{app.replace('-', '_')}_n{nodes}_k{participants}",
    }


def run_app(
    superlink: SimulationSuperLink,
    app: str,
    run_config: dict,
    cell: tuple[int, int, int],
    out: Path,
) -> tuple[dict, pd.DataFrame]:
    """Run one App at ``cell = (N, K, CPUs per actor)``; return its summary and steps."""
    nodes, participants, client_cpus = cell
    app_dir = ROOT if app == "flwr-split" else ECHO_APP
    load_before, started = os.getloadavg()[0], time.perf_counter()
    with PeakMemory(superlink.alive) as memory:
        done = superlink.run(app_dir, run_config, nodes, client_cpus, timeout=6 * 3600)
    steps_csv = out / f"{run_config['run-name']}_steps.csv"
    if done.returncode != 0 or not steps_csv.exists():  # flwr run exits 0 if Ray fails to start
        raise RuntimeError(f"{app} at N={nodes} failed:\n{done.stdout}{done.stderr}")
    frame = pd.read_csv(steps_csv)
    history = out / f"{run_config['run-name']}.csv"
    timed = frame[frame["step"] >= 1]
    row = {
        "app": app,
        "nodes": nodes,
        "participants": participants,
        "steps": len(frame),
        "messages": int(frame["messages"].sum()),
        "step_s": float(timed["wall_s"].median()),
        # A paced echo's wall time leaves out the pause that stands for the SL server's compute.
        "paced_step_s": float((timed["wall_s"] + timed.get("pause_s", 0.0)).median()),
        # The echo App has no server compute (no such column); its clients may report compute.
        "server_s": float(timed.get("server_s", pd.Series([0.0])).median()),
        "client_compute_s": float(timed.get("client_compute_s", pd.Series([0.0])).median()),
        "run_wall_s": time.perf_counter() - started,
        "peak_rss_gb": memory.peak_rss / 1e9,
        "peak_pss_gb": memory.peak_pss / 1e9,
        "peak_processes": memory.peak_processes,
        **{f"peak_rss_gb_{kind}": rss / 1e9 for kind, rss in memory.peak_rss_by_kind.items()},
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
        **(evaluations(pd.read_csv(history)) if history.exists() else {}),
        # the echo App's round to every node before its steps
        **({"warmup_s": float(frame["warmup_s"].iloc[0])} if "warmup_s" in frame else {}),
    }
    frame.insert(0, "app", app)
    frame.insert(1, "nodes", nodes)
    frame.insert(2, "participants", participants)
    return row, frame


def evaluations(history: pd.DataFrame) -> dict[str, object]:
    """Return the first and last evaluation of an SL run's history: steps and accuracies."""
    first, last = history.iloc[0], history.iloc[-1]
    return {
        "epochs": int(last["epoch"]) + 1,
        "evaluations": len(history),
        "first_eval_step": int(first["step"]),
        "first_accuracy": float(first["accuracy"]),
        "last_eval_step": int(last["step"]),
        "last_accuracy": float(last["accuracy"]),
    }


def run_cell(
    superlink: SimulationSuperLink,
    cell: tuple[int, int, int],
    steps: int,
    out: Path,
    echo_apps: tuple[str, ...] = ("echo", "echo-paced"),
    trained: dict | None = None,
    overrides: dict | None = None,
) -> tuple[list[dict], pd.DataFrame]:
    """Run the SL App, then the echo runs with the same messages per step, for one (N, K, CPUs).

    ``trained``: the keys of a training run (`training`); else ``steps`` timed steps.
    ``overrides`` go into every App's run config (e.g. ``step-timeout``).
    """
    nodes, participants, _ = cell
    sl_config = {**sl_run_config(nodes, participants, steps, out, trained), **(overrides or {})}
    sl_row, sl_steps = run_app(superlink, "flwr-split", sl_config, cell, out)
    rows, frames = [sl_row], [sl_steps]
    batch = int(sl_config["batch-size"])  # type: ignore[call-overload]
    for app in echo_apps:
        echo_config = echo_run_config(app, (nodes, participants, batch), sl_steps, out)
        echo_config.update(overrides or {})
        echo_row, echo_steps = run_app(superlink, app, echo_config, cell, out)
        rows.append(echo_row)
        frames.append(echo_steps)
    return rows, pd.concat(frames, ignore_index=True)


def run_echo_alone(
    superlink: SimulationSuperLink,
    cell: tuple[int, int, int],
    steps: int,
    out: Path,
    overrides: dict,
) -> tuple[list[dict], pd.DataFrame]:
    """Run only the echo App, K empty messages per step for ``steps`` steps: Flower alone."""
    nodes, participants, _ = cell
    config = {
        "min-nodes": nodes,
        "participants": participants,
        "steps": steps,
        **overrides,
        "output-dir": str(out),
        "run-name": f"echo_alone_n{nodes}_k{participants}",
    }
    row, frame = run_app(superlink, "echo", config, cell, out)
    return [row], frame


def summarize(runs: pd.DataFrame, actors: int) -> pd.DataFrame:
    """One row per (N, K): SL and echo step times, compute, overhead ratio and the goal check."""
    by_app = {app: frame.set_index(["nodes", "participants"]) for app, frame in runs.groupby("app")}
    sl, echo = by_app["flwr-split"], by_app["echo"]
    table = pd.DataFrame(
        {
            "sl_step_s": sl["step_s"],
            "echo_step_s": by_app["echo-paced"]["step_s"],
            "echo_unpaced_step_s": echo["step_s"],
            "compute_s": sl["server_s"] + sl["client_compute_s"] / actors,
            "sl_peak_rss_gb": sl["peak_rss_gb"],
            "echo_peak_rss_gb": echo["peak_rss_gb"],
            "sl_peak_pss_gb": sl["peak_pss_gb"],
            "sl_run_wall_s": sl["run_wall_s"],
            "echo_run_wall_s": echo["run_wall_s"],
        }
    )
    for column in ("steps", "first_accuracy", "last_accuracy"):
        if column in sl:
            table[f"sl_{column}"] = sl[column]
    overhead = table["sl_step_s"] - table["compute_s"]
    table["overhead_ratio"] = overhead / table["echo_step_s"]
    table["overhead_ratio_unpaced"] = overhead / table["echo_unpaced_step_s"]
    if "echo-sl" in by_app:
        table["echo_sl_step_s"] = by_app["echo-sl"]["step_s"]
        table["overhead_ratio_sl_shaped"] = overhead / table["echo_sl_step_s"]
    for app, name in (("echo-compute", "compute"), ("echo-sl-compute", "sl_compute")):
        if app in by_app:  # floor: the step minus the compute its clients report, per actor
            computed, floor = by_app[app], f"echo_{name}_floor_s"
            table[f"echo_{name}_step_s"] = computed["step_s"]
            table[floor] = computed["step_s"] - computed["client_compute_s"] / actors
            table[f"overhead_ratio_{name}_matched"] = overhead / table[floor]
            table[f"goal_met_{name}_matched"] = within_goal(table, floor)
            table[f"echo_{name}_paced_step_s"] = computed["paced_step_s"]
            table[f"step_ratio_{name}"] = table["sl_step_s"] / computed["paced_step_s"]
            table[f"goal_met_step_ratio_{name}"] = table[f"step_ratio_{name}"] <= GOAL_STEP_RATIO
    table["goal_met"] = within_goal(table, "echo_step_s")
    return table.reset_index()


def within_goal(table: pd.DataFrame, floor: str) -> pd.Series:
    """Whether ``sl_step_s <= 1.2 * table[floor] + compute_s``, row by row."""
    return table["sl_step_s"] <= GOAL_FACTOR * table[floor] + table["compute_s"]


def plot(summary: pd.DataFrame, path: Path) -> None:
    """Step time against N (SL, echo floor, goal line) and peak RSS against N, per K."""
    fig, (ax_time, ax_memory) = plt.subplots(1, 2, figsize=(11, 4))
    for participants, cell in summary.groupby("participants"):
        ax_time.plot(cell["nodes"], cell["sl_step_s"], "o-", label=f"flwr-split, K={participants}")
        ax_time.plot(
            cell["nodes"], cell["echo_step_s"], "s--", label=f"echo floor (paced), K={participants}"
        )
        if "echo_compute_floor_s" in cell:
            ax_time.plot(
                cell["nodes"],
                cell["echo_compute_floor_s"],
                "^--",
                label=f"echo floor (clients compute), K={participants}",
            )
        goal = GOAL_FACTOR * cell["echo_step_s"] + cell["compute_s"]
        ax_time.plot(cell["nodes"], goal, ":", label=f"1.2 x echo + compute, K={participants}")
        ax_memory.plot(
            cell["nodes"], cell["sl_peak_rss_gb"], "o-", label=f"flwr-split, K={participants}"
        )
        ax_memory.plot(
            cell["nodes"], cell["echo_peak_rss_gb"], "s--", label=f"echo, K={participants}"
        )
    ax_memory.axhline(4 * 2**30 / 1e9, color="grey", lw=0.8, label="4 GiB")
    ax_time.set_ylabel("median step time (s)")
    ax_memory.set_ylabel("peak RSS of the process tree (GB)")
    for ax in (ax_time, ax_memory):
        ax.set_xscale("log")
        ax.set_xlabel("virtual SuperNodes N")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[10, 100, 300, 1000])
    parser.add_argument("--participants", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument(
        "--client-cpus",
        type=int,
        default=1,
        help="CPUs per ClientApp actor (1: 2 actors on 2 cores)",
    )
    parser.add_argument(
        "--shaped-echo",
        action="store_true",
        help="also run the echo App with SL-shaped records (paced): Flower's cost of the content",
    )
    parser.add_argument(
        "--compute-echo",
        action="store_true",
        help="also run the echo whose clients compute as long as the SL run's (paced, empty)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=0,
        help="train this many whole epochs instead of --steps timed steps",
    )
    parser.add_argument("--task", default="mnist", help="the training runs' task")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=TRAIN_BATCH,
        help="the training runs' samples per client and step",
    )
    parser.add_argument("--eval-every", type=int, default=20, help="the training runs' period")
    parser.add_argument(
        "--step-timeout", type=float, help="every App's step-timeout (default: the Apps' own)"
    )
    alone = parser.add_mutually_exclusive_group()
    alone.add_argument(
        "--echo-alone",
        action="store_true",
        help="run only the echo App (K per step, --steps steps): Flower's floor where SL stops",
    )
    alone.add_argument(
        "--sl-alone",
        action="store_true",
        help="run only the SL App, without its echo floors (e.g. a 10,000-client training run)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="N=4, K=2, 3 steps; with --epochs: N=10, K=5 on digits, batch 36",
    )
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    if args.quick:
        args.nodes, args.participants, args.steps = [4], [2], 3
    if args.quick and args.epochs:
        args.nodes, args.participants, args.task, args.batch_size = [10], [5], "digits", 36
    trained = (
        training(args.task, args.epochs, args.batch_size, args.eval_every) if args.epochs else None
    )
    out = output_dir("bench_scale", args.results).resolve()  # the ServerApp runs elsewhere
    actors = max(1, (os.cpu_count() or 1) // args.client_cpus)
    write_env(out, client_cpus=args.client_cpus, actors=actors, steps=args.steps, trained=trained)
    echo_apps = () if args.sl_alone else echo_runs(args.shaped_echo, args.compute_echo)
    extra = {} if args.step_timeout is None else {"step-timeout": args.step_timeout}
    rows, step_frames = [], []
    for nodes in args.nodes:
        with SimulationSuperLink(out / f"flwr-home-n{nodes}") as superlink:
            for participants in args.participants:
                if participants > nodes and nodes in args.participants:
                    continue  # K > N is the cell (N, N), run already
                cell = (nodes, min(participants, nodes), args.client_cpus)
                if args.echo_alone:
                    cell_rows, cell_steps = run_echo_alone(superlink, cell, args.steps, out, extra)
                else:
                    cell_rows, cell_steps = run_cell(
                        superlink, cell, args.steps, out, echo_apps, trained, extra
                    )
                rows += cell_rows
                step_frames.append(cell_steps)
                print(pd.DataFrame(cell_rows).to_string(index=False), flush=True)
    runs = pd.DataFrame(rows)
    runs.to_csv(out / "runs.csv", index=False)
    pd.concat(step_frames, ignore_index=True).to_csv(out / "steps.csv", index=False)
    if args.echo_alone or args.sl_alone:
        print(runs.to_string(index=False))
        return runs
    summary = summarize(runs, actors)
    summary.to_csv(out / "summary.csv", index=False)
    plot(summary, out / "scale.png")
    print(summary.to_string(index=False))
    print(f"results in {out}")
    return summary


if __name__ == "__main__":
    main()
