"""`RayCluster`: a multi-node Ray cluster of our own on loopback (head + workers), for one block.

Flower's simulation joins an existing Ray cluster when the SuperLink that runs
it has ``RAY_ADDRESS`` in its environment (`SimulationSuperLink`'s
``ray_address``): flwr 1.42's Ray backend calls ``ray.init()`` without an
address, which connects to ``RAY_ADDRESS``, and its federation config has no
address field. This starts such a cluster on 127.0.0.1 for tests and for
trying multi-node runs on one machine (``docs/scale.md`` has the commands for
several hosts).

The nodes run in one process of ours (`flwr_split.launch.ray_nodes`: Ray's
command line cannot start worker nodes on loopback), with a private
``RAY_TMPDIR``, so the cluster never becomes the one a plain ``ray.init()``
elsewhere on the machine finds (Ray records the latest cluster in
``<temp dir>/ray/ray_current_cluster``). Stopping ends exactly the processes we
started and everything they spawned (never ``ray stop``, which stops every Ray
instance of the machine).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from flwr_split.launch.processes import FlowerProcesses, command_line, descendants
from flwr_split.launch.ray_nodes import RAY_ON_LOOPBACK, STARTED

NODES_PROCESS = "ray-nodes"
"""Name of the process (and log) that holds every node."""
OBJECT_STORE_BYTES = 100 * 2**20
"""Object store of each node: small (Ray's minimum is 75 MiB); the simulation moves little data."""


class RayCluster(FlowerProcesses):
    """A Ray head and ``num_nodes - 1`` workers on 127.0.0.1, for one ``with`` block.

    Parameters
    ----------
    log_dir : Path
        Where the nodes' process logs (``ray-nodes.log``).
    num_nodes : int (default: 2)
        Nodes including the head.
    cpus_per_node : int (default: 1)
        CPUs each node offers to Ray (its ``num_cpus``).
    startup_timeout : float (default: 120.0)
        Seconds to wait for every node to be up.
    """

    def __init__(
        self,
        log_dir: Path,
        num_nodes: int = 2,
        cpus_per_node: int = 1,
        startup_timeout: float = 120.0,
    ) -> None:
        if num_nodes < 1:
            raise ValueError("num_nodes must be >= 1")
        super().__init__(log_dir, connection="ray")
        self.num_nodes = num_nodes
        self.cpus_per_node = cpus_per_node
        self.startup_timeout = startup_timeout
        self.address: str | None = None
        """GCS address of the head once the nodes are up: what ``RAY_ADDRESS`` takes."""
        self.temp_dir: Path | None = None

    def __enter__(self) -> RayCluster:
        # short: Ray puts Unix sockets under it, and their paths are limited to 107 bytes
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        command = [
            sys.executable,
            "-m",
            "flwr_split.launch.ray_nodes",
            "--nodes",
            str(self.num_nodes),
            "--cpus-per-node",
            str(self.cpus_per_node),
            "--object-store-bytes",
            str(OBJECT_STORE_BYTES),
        ]
        env = {**RAY_ON_LOOPBACK, "RAY_TMPDIR": str(self.temp_dir)}
        try:
            self.start(NODES_PROCESS, command, env=env)
            self.wait_until(
                lambda: STARTED in self.read_log(NODES_PROCESS), self.startup_timeout, "Ray nodes"
            )
            self.address = self._logged("address")[0][0]
        except BaseException:
            self.stop()
            raise
        return self

    def _logged(self, key: str) -> list[list[str]]:
        """Return the words after ``key`` of each ``<key> ...`` line the nodes' process printed."""
        lines = self.read_log(NODES_PROCESS).splitlines()
        return [line.split()[1:] for line in lines if line.startswith(f"{key} ")]

    @property
    def node_ids(self) -> dict[str, str]:
        """Ray node id of each node, by name (``ray-head``, ``ray-worker-<i>``)."""
        return {name: node_id for name, node_id in self._logged("node")}

    def node_processes(self, name: str) -> set[int]:
        """Process ids of node ``name``'s raylet and all it started (its workers and agents)."""
        process = self.processes.get(NODES_PROCESS)
        node_id = self.node_ids.get(name)
        if process is None or node_id is None:
            return set()
        raylets = [
            pid
            for pid in descendants([process.pid])
            if f"--node_id={node_id}" in command_line(pid).split()
        ]
        return set(raylets) | descendants(raylets)

    def stop(self) -> None:
        """Stop every node and all they started; remove the temporary folder."""
        super().stop()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None
