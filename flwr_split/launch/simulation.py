"""`SimulationSuperLink`: a ``flower-superlink --simulation`` of our own on a free loopback port."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from flwr_split.launch.processes import (
    FlowerProcesses,
    free_port,
    superlink_command,
    toml_overrides,
)
from flwr_split.launch.ray_nodes import RAY_ON_LOOPBACK


class SimulationSuperLink(FlowerProcesses):
    """A ``flower-superlink --simulation`` on a free loopback port, for one ``with`` block.

    Parameters
    ----------
    flwr_home : Path
        Project-local ``FLWR_HOME``; holds ``config.toml`` and the SuperLink log.
    connection : str (default: "sim")
        Name of the SuperLink connection written to ``config.toml``.
    startup_timeout : float (default: 60.0)
        Seconds to wait for the SuperLink to answer its health check.
    ray_address : str or None (default: None)
        Address of an existing Ray cluster (``<head-ip>:<port>``, as ``ray start
        --head`` prints it) that the simulations join instead of starting Ray on
        this machine alone: it goes into the SuperLink's environment as
        ``RAY_ADDRESS``, which the simulation process inherits and ``ray.init()``
        connects to. Do not set ``init-args-num-cpus`` / ``-num-gpus`` then (Ray
        refuses them when joining a cluster). Without one, or with one on
        127.0.0.1 (`RayCluster`), Ray gets `RAY_ON_LOOPBACK`: it listens on
        127.0.0.1 only.
    """

    def __init__(
        self,
        flwr_home: Path,
        connection: str = "sim",
        startup_timeout: float = 60.0,
        ray_address: str | None = None,
    ) -> None:
        super().__init__(flwr_home, connection)
        self.startup_timeout = startup_timeout
        if ray_address is not None:
            self.env["RAY_ADDRESS"] = ray_address
        if ray_address is None or ray_address.startswith("127.0.0.1:"):
            self.env.update(RAY_ON_LOOPBACK)
        self.port = free_port()
        self.log_path = self.flwr_home / "superlink.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SimulationSuperLink:
        self.write_connection(f"127.0.0.1:{self.port}", insecure=True)
        command = superlink_command(self.port, "--insecure", "--simulation")
        self.process = self.start("superlink", command)
        try:
            self.wait_healthy(self.port, self.startup_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def run(
        self,
        app_dir: Path,
        run_config: Mapping[str, object],
        num_supernodes: int,
        client_cpus: int = 1,
        timeout: float | None = None,
        extra_federation_config: Mapping[str, object] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``flwr run APP sim --stream`` and return the finished process.

        Parameters
        ----------
        app_dir : Path
            Folder of the Flower App (holds ``pyproject.toml``).
        run_config : Mapping[str, object]
            ``--run-config`` overrides.
        num_supernodes : int
            Virtual SuperNodes of the simulation.
        client_cpus : int (default: 1)
            CPUs per ClientApp actor (2 actors on a 2-core machine with 1).
        timeout : float or None
            Seconds before the run is killed.
        extra_federation_config : Mapping[str, object] or None
            More ``--federation-config`` keys (e.g. ``init-args-num-cpus``).
        on_line : Callable[[str], None] or None
            Takes each line of the output as ``flwr run`` prints it (then
            ``stdout`` holds stdout and stderr together).
        """
        federation = {"num-supernodes": num_supernodes, "client-resources-num-cpus": client_cpus}
        federation.update(extra_federation_config or {})
        return self.flwr_run(
            app_dir,
            run_config,
            ["--federation-config", toml_overrides(federation)],
            timeout=timeout,
            on_line=on_line,
        )

    def stop(self) -> None:
        """Stop the SuperLink and everything it started (SuperExec, simulation, Ray)."""
        super().stop()
        self.process = None
