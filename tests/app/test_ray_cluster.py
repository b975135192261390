"""The simulation joins an existing two-node Ray cluster (head + worker on loopback)."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

from flwr_split.launch.processes import command_line
from flwr_split.launch.ray_cluster import RayCluster
from flwr_split.launch.simulation import SimulationSuperLink

ROOT = Path(__file__).resolve().parents[2]
NUM_NODES = 4


class ActorWatch:
    """Records, while running, the Ray actor processes each cluster node has started."""

    def __init__(self, cluster: RayCluster) -> None:
        self.cluster = cluster
        self.seen: dict[str, set[int]] = {name: set() for name in cluster.node_ids}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.wait(0.3):
            for name in self.seen:
                for pid in self.cluster.node_processes(name):
                    if "ClientAppActor" in command_line(pid):
                        self.seen[name].add(pid)

    def __enter__(self) -> ActorWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._done.set()
        self._thread.join()


@pytest.mark.slow
def test_simulation_runs_on_an_existing_two_node_ray_cluster(tmp_path):
    run_config = {
        "min-nodes": NUM_NODES,
        "epochs": 1,
        "max-steps": 3,
        "eval-every": 3,
        "batch-size": 8,
        "output-dir": str(tmp_path / "out"),
        "run-name": "cluster",
    }
    with RayCluster(tmp_path / "ray", num_nodes=2, cpus_per_node=1) as cluster:
        home = tmp_path / "flwr-home"
        with (
            SimulationSuperLink(home, ray_address=cluster.address) as superlink,
            ActorWatch(cluster) as watch,
        ):
            done = superlink.run(ROOT, run_config, NUM_NODES, client_cpus=1, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        # one actor per node CPU: the worker node served ClientApps, not only the head
        assert watch.seen["ray-head"] and watch.seen["ray-worker-1"], watch.seen
    assert not cluster.alive()  # both nodes and everything they started are gone
    steps = pd.read_csv(tmp_path / "out" / "cluster_steps.csv")
    assert list(steps["step"]) == [0, 1, 2] and (steps["clients"] == NUM_NODES).all()
    history = pd.read_csv(tmp_path / "out" / "cluster.csv")
    assert history["accuracy"].iloc[-1] > 0.1
