"""`RayCluster`: a multi-node Ray cluster of our own on loopback (head + workers), for one block.

Flower's simulation joins an existing Ray cluster when the SuperLink that runs
it has ``RAY_ADDRESS`` in its environment (`SimulationSuperLink`'s
``ray_address``): flwr 1.42's Ray backend calls ``ray.init()`` without an
address, which connects to ``RAY_ADDRESS``, and its federation config has no
address field. This starts such a cluster on 127.0.0.1 for tests and for
trying multi-node runs on one machine (``docs/scale.md`` has the commands for
several hosts).

Each node is a ``ray start --block`` in its own session, with its own ports
and a private ``--temp-dir``, so the cluster never becomes the one a plain
``ray.init()`` elsewhere on the machine finds (Ray records the latest
``ray start`` in ``<temp-dir>/ray_current_cluster``). Stopping ends exactly the
processes we started and everything they spawned (never ``ray stop``, which
stops every Ray instance of the machine).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from flwr_split.launch.processes import FlowerProcesses, _executable, descendants, free_port

STARTED = "Ray runtime started."
"""What ``ray start`` logs once its node is up (and, on a worker, has joined the head)."""
OBJECT_STORE_BYTES = 100 * 2**20
"""Object store of each node: small (Ray's minimum is 75 MiB); the simulation moves little data."""


class RayCluster(FlowerProcesses):
    """A Ray head and ``num_nodes - 1`` workers on 127.0.0.1, for one ``with`` block.

    Parameters
    ----------
    log_dir : Path
        Where each node's ``ray start`` output goes (``ray-head.log``, ``ray-worker-<i>.log``).
    num_nodes : int (default: 2)
        Nodes including the head.
    cpus_per_node : int (default: 1)
        CPUs each node offers to Ray (``--num-cpus``).
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
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        """GCS address of the head: what ``RAY_ADDRESS`` (or ``ray start --address``) takes."""
        self.temp_dir: Path | None = None

    def __enter__(self) -> RayCluster:
        # short: Ray puts Unix sockets under it, and their paths are limited to 107 bytes
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))
        try:
            self._start_node("ray-head", ["--head", "--port", str(self.port)])
            self.wait_until(
                lambda: STARTED in self.read_log("ray-head"), self.startup_timeout, "head"
            )
            for index in range(1, self.num_nodes):
                self._start_node(f"ray-worker-{index}", ["--address", self.address])
            self.wait_until(self._all_started, self.startup_timeout, "Ray worker nodes")
        except BaseException:
            self.stop()
            raise
        return self

    def _start_node(self, name: str, role: list[str]) -> None:
        assert self.temp_dir is not None
        ports = [
            "--node-manager-port",
            "--object-manager-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--runtime-env-agent-port",
            "--metrics-export-port",
        ]
        if "--head" in role:
            ports.append("--ray-client-server-port")
            role = [*role, "--include-dashboard", "false"]
        command = [
            _executable("ray"),
            "start",
            "--block",
            *role,
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            str(self.cpus_per_node),
            "--object-store-memory",
            str(OBJECT_STORE_BYTES),
            "--disable-usage-stats",
            "--temp-dir",
            str(self.temp_dir),
        ]
        for option in ports:
            command += [option, str(free_port())]
        self.start(name, command)

    def _all_started(self) -> bool:
        return all(STARTED in self.read_log(f"ray-worker-{i}") for i in range(1, self.num_nodes))

    def node_processes(self, name: str) -> set[int]:
        """Process ids of node ``name`` (``ray-head``, ``ray-worker-<i>``) and all it started."""
        process = self.processes.get(name)
        return descendants([process.pid]) if process is not None else set()

    def stop(self) -> None:
        """Stop every node and all they started; remove the temporary folder."""
        super().stop()
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None
