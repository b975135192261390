"""What the deployment tests share: evidence of a run, and the one honest 2-node deployment.

A deployment round trip costs seconds (a new ``flwr-clientapp`` process per
message), so the tests that only need an honest insecure cluster share one
(`run_honest_and_corrupt`, behind the session fixture ``honest_deployment`` of
``tests/app/conftest.py``): it runs the project's App once and then
``tests/apps/corrupt_app`` once on the same cluster, gathers everything the
tests look at (results, logs, the ServerApp's peak RSS) and stops the cluster
before any test reads it.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from flwr_split.launch.deployment import DeploymentCluster
from flwr_split.launch.processes import command_line, marked_processes

ROOT = Path(__file__).resolve().parents[2]
CORRUPT_APP = ROOT / "tests" / "apps" / "corrupt_app"
RUN_TIMEOUT = 900.0
HONEST_NODES = 2
"""Two SuperNodes: one corrupts its replies, the other trains on (a third added no claim)."""
HONEST_STEPS = 3
"""Three steps: the corrupt App damages step k by k mod 3, so each damage reaches training."""
HONEST_JOB = {
    "epochs": 1,
    "max-steps": HONEST_STEPS,
    "eval-every": HONEST_STEPS,
    "batch-size": 8,
    "min-nodes": HONEST_NODES,
}
"""A short SL job: hello, steps 0 to 2, the sync and one evaluation."""


@dataclass
class Evidence:
    """What a cluster fixture collected before it stopped its cluster."""

    cluster: DeploymentCluster
    run_config: dict[str, object]
    done: subprocess.CompletedProcess[str]
    superlink_log: str = ""
    supernode_logs: list[str] = field(default_factory=list)
    started_pids: set[int] = field(default_factory=set)
    left_after_stop: set[int] = field(default_factory=set)
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return Path(str(self.run_config["output-dir"]))

    def read_logs(self) -> None:
        """Keep what the SuperLink and every SuperNode have logged so far."""
        self.superlink_log = self.cluster.read_log("superlink")
        self.supernode_logs = [
            self.cluster.read_log(f"supernode-{i}") for i in range(self.cluster.num_supernodes)
        ]


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


def _watched_run(cluster: DeploymentCluster, app: Path, run_config: dict[str, object]) -> Evidence:
    """Run ``app`` on ``cluster``; note the live processes and the ServerApp's peak RSS."""
    watch = ServerAppPeak(cluster)
    watch.start()
    try:
        done = cluster.run(app, run_config, timeout=RUN_TIMEOUT)
    finally:
        watch.done.set()
        watch.join()
    evidence = Evidence(cluster, run_config, done, started_pids=cluster.alive())
    evidence.extra["serverapp_peak_rss"] = watch.peak
    return evidence


def run_honest_and_corrupt(base: Path) -> tuple[Evidence, Evidence]:
    """Run `HONEST_JOB` with the project's App, then with the corrupt App, on one cluster.

    Returns the evidence of both runs, taken after the cluster stopped
    (``left_after_stop``: what was still running then). The honest run's logs
    are read before the corrupt run starts; the corrupt run's are not read.
    """
    cluster = DeploymentCluster(base / "flwr-home", HONEST_NODES)
    # The corrupt App's FAB holds only its own package: its processes import this checkout.
    cluster.env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )
    with cluster:
        honest_config = {**HONEST_JOB, "output-dir": str(base / "honest"), "run-name": "deploy"}
        honest = _watched_run(cluster, ROOT, honest_config)
        honest.read_logs()
        corrupt_config = {**HONEST_JOB, "output-dir": str(base / "corrupt"), "run-name": "corrupt"}
        corrupt = _watched_run(cluster, CORRUPT_APP, corrupt_config)
    honest.left_after_stop = corrupt.left_after_stop = marked_processes(cluster.launch_id)
    return honest, corrupt
