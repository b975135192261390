"""One SuperNode of a real deployment sends corrupted replies: the run goes on without it.

`tests/apps/corrupt_app` is the project's ServerApp with a ClientApp whose last
partition damages every training and evaluation reply: a ``.npy`` header that
claims 10^12 floats, metadata JSON nested 200,000 deep, a 500 MiB extra array.
The same cluster first runs the project's App (no corruption) for the ServerApp's
normal peak RSS.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pandas as pd
import pytest

from flwr_split.launch.deployment import DeploymentCluster
from flwr_split.launch.processes import command_line, marked_processes

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "tests" / "apps" / "corrupt_app"
NODES, STEPS = 3, 3
JOB = {"min-nodes": NODES, "epochs": 1, "max-steps": STEPS, "eval-every": STEPS, "batch-size": 8}
RSS_RATIO = 1.5

pytestmark = pytest.mark.slow


def _peak_rss(pid: int) -> int:
    """Peak resident set size of a process so far (``VmHWM``), 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else 0


class ServerAppPeak(threading.Thread):
    """Follow the cluster's ``flwr-serverapp`` processes; keep the highest peak RSS seen."""

    def __init__(self, cluster: DeploymentCluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.peak = 0
        self.pids: set[int] = set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            if not any(_peak_rss(pid) for pid in self.pids):
                alive = self.cluster.alive()
                self.pids = {p for p in alive if "flwr-serverapp" in command_line(p)}
            self.peak = max([self.peak, *(_peak_rss(pid) for pid in self.pids)])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("corrupt")
    cluster = DeploymentCluster(base / "flwr-home", NODES)
    # The corrupt App's FAB holds only its own package: its processes import this checkout.
    cluster.env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    evidence = {}
    with cluster:
        for name, app in (("honest", ROOT), ("corrupt", APP)):
            run_config = {**JOB, "output-dir": str(base / name), "run-name": name}
            watch = ServerAppPeak(cluster)
            watch.start()
            done = cluster.run(app, run_config, timeout=900)
            watch.done.set()
            watch.join()
            evidence[name] = (done, watch.peak, base / name)
    assert not marked_processes(cluster.launch_id)
    return evidence


def test_the_run_completes_and_only_the_corrupting_client_is_dropped(runs):
    done, _, out = runs["corrupt"]
    assert done.returncode == 0, done.stdout + done.stderr
    assert "final test accuracy" in done.stdout, done.stdout + done.stderr
    drops = re.findall(r"step (\d+): dropping partition (\d+) \(node \d+\): (.*)", done.stdout)
    assert {int(part) for _, part, _ in drops} == {NODES - 1}
    assert sorted({int(step) for step, _, _ in drops}) == list(range(STEPS + 1))  # + evaluation
    history = pd.read_csv(out / "corrupt.csv")
    steps = pd.read_csv(out / "corrupt_steps.csv")
    assert list(steps["active_clients"]) == [NODES - 1] * STEPS  # the others trained
    assert history["accuracy"].notna().all() and history["eval_samples"].iloc[-1] > 0


def test_the_serverapp_stays_within_one_and_a_half_times_its_normal_memory(runs):
    honest, corrupt = runs["honest"][1], runs["corrupt"][1]
    print(f"ServerApp peak RSS: honest {honest / 2**20:.0f} MiB, corrupt {corrupt / 2**20:.0f} MiB")
    assert 0 < corrupt <= RSS_RATIO * honest
