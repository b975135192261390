"""Benchmark: the SL step on a real deployment (SuperLink + SuperNodes) against a torch echo.

Usage: ``python -m simulations.bench_deploy [--supernodes 3] [--steps 6] [--repeats 3]
[--batch-size 8] [--quick]``

One `DeploymentCluster` (``flower-superlink`` and ``--supernodes``
``flower-supernode``s on 127.0.0.1, insecure) runs, ``--repeats`` times and
alternately, two Apps through ``flwr run``:

- **flwr-split** (this repository): digits, every SuperNode in every step
  (``sync="every_epoch"``: one round trip per step), ``--batch-size`` samples
  per client, ``--steps`` steps;
- **echo-torch** (``simulations/echo_app``, ``import-torch=true``): the same
  node wait, a warm-up round and ``--steps`` steps to every SuperNode, whose
  ClientApp imports torch and replies with empty content.

A SuperNode starts a fresh ClientApp process for every message, so the echo is
the floor of any ClientApp that computes with torch: Flower's transport, its
process start and torch's import. A step's time is the median over steps 1..
of the ServerApp's ``<run>_steps.csv`` (step 0 pays first-use costs); the
ratio of each repeat's SL step to the echo step next to it is the figure
(issue 23: at most 1.3). Writes ``runs.csv``, ``steps.csv`` and ``env.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from flwr_split.launch.deployment import DeploymentCluster
from simulations.common import ECHO_APP, ROOT, output_dir, write_env

GOAL_RATIO = 1.3
"""Issue 23: an SL step may cost at most 1.3x the torch echo's step."""


def run_configs(nodes: int, steps: int, batch: int, out: Path, repeat: int) -> dict[str, dict]:
    """Return the ``--run-config`` of each App for one repeat."""
    common = {"min-nodes": nodes, "output-dir": str(out), "step-timeout": 600.0}
    return {
        "flwr-split": {
            **common,
            "batch-size": batch,
            "max-steps": steps,
            "eval-every": 10**6,
            "run-name": f"sl_r{repeat}",
        },
        "echo-torch": {
            **common,
            "participants": nodes,
            "steps": steps,
            "import-torch": True,
            "run-name": f"echo_torch_r{repeat}",
        },
    }


def run_app(
    cluster: DeploymentCluster, app: str, run_config: dict, out: Path
) -> tuple[dict, pd.DataFrame]:
    """Run one App on the cluster; return its summary row and its step rows."""
    started = time.perf_counter()
    done = cluster.run(ROOT if app == "flwr-split" else ECHO_APP, run_config, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{app} failed:\n{done.stdout}{done.stderr}")
    steps = pd.read_csv(out / f"{run_config['run-name']}_steps.csv")
    row = {
        "app": app,
        "steps": len(steps),
        "step_s": float(steps.loc[steps["step"] >= 1, "wall_s"].median()),
        "run_wall_s": time.perf_counter() - started,
    }
    steps.insert(0, "app", app)
    return row, steps


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernodes", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="1 SuperNode, 2 steps, 1 repeat")
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    if args.quick:
        args.supernodes, args.steps, args.repeats = 1, 2, 1
    out = output_dir("bench_deploy", args.results).resolve()  # the ServerApp runs elsewhere
    write_env(out, supernodes=args.supernodes, steps=args.steps, batch_size=args.batch_size)
    rows, frames = [], []
    with DeploymentCluster(out / "flwr-home", args.supernodes) as cluster:
        for repeat in range(args.repeats):
            configs = run_configs(args.supernodes, args.steps, args.batch_size, out, repeat)
            order = list(configs) if repeat % 2 == 0 else list(reversed(configs))
            for app in order:
                row, steps = run_app(cluster, app, configs[app], out)
                rows.append({"repeat": repeat, **row})
                frames.append(steps.assign(repeat=repeat))
                print(rows[-1], flush=True)
    runs = pd.DataFrame(rows)
    pivot = runs.pivot(index="repeat", columns="app", values="step_s")
    runs["ratio"] = runs["repeat"].map(pivot["flwr-split"] / pivot["echo-torch"])
    runs.to_csv(out / "runs.csv", index=False)
    pd.concat(frames, ignore_index=True).to_csv(out / "steps.csv", index=False)
    ratio = float((pivot["flwr-split"] / pivot["echo-torch"]).median())
    print(runs.to_string(index=False))
    print(
        f"median SL step {pivot['flwr-split'].median():.2f} s, echo-torch step "
        f"{pivot['echo-torch'].median():.2f} s, ratio {ratio:.2f} (goal <= {GOAL_RATIO})"
    )
    print(f"results in {out}")
    return runs


if __name__ == "__main__":
    main()
