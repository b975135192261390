"""Start Flower processes on loopback and run the App with `flwr run`, cleaning up after.

`flwr run` with the ``:local:`` connection leaves a detached SuperLink daemon
behind on a fixed port. `SimulationSuperLink` instead starts its own
``flower-superlink --simulation`` on a free 127.0.0.1 port, owned by this
process and stopped on exit, and writes a project-local ``FLWR_HOME`` with a
connection to it, so runs share no state through ``~/.flwr``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
"""Environment every Flower process of ours gets: no telemetry, no network at run time."""


def flower_env(flwr_home: Path) -> dict[str, str]:
    """Return ``os.environ`` plus `FLOWER_ENV`, ``FLWR_HOME`` and this Python's ``bin`` on PATH."""
    env = dict(os.environ)
    env.update(FLOWER_ENV)
    env["FLWR_HOME"] = str(flwr_home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _executable(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        raise FileNotFoundError(f"'{name}' not found; install flwr[simulation] in this environment")
    return path


def toml_overrides(values: Mapping[str, object]) -> str:
    """Format ``{"uplink": "fp16", "epochs": 3}`` as ``uplink="fp16" epochs=3`` for `flwr run`."""
    parts = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        else:
            text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


class SimulationSuperLink:
    """A ``flower-superlink --simulation`` on a free loopback port, for one ``with`` block.

    Parameters
    ----------
    flwr_home : Path
        Project-local ``FLWR_HOME``; holds ``config.toml`` and the SuperLink log.
    connection : str (default: "sim")
        Name of the SuperLink connection written to ``config.toml``.
    startup_timeout : float (default: 60.0)
        Seconds to wait for the SuperLink to answer its health check.
    """

    def __init__(
        self, flwr_home: Path, connection: str = "sim", startup_timeout: float = 60.0
    ) -> None:
        self.flwr_home = Path(flwr_home).resolve()
        self.connection = connection
        self.startup_timeout = startup_timeout
        self.port = free_port()
        self.env = flower_env(self.flwr_home)
        self.log_path = self.flwr_home / "superlink.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SimulationSuperLink:
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        (self.flwr_home / "config.toml").write_text(
            f'[superlink]\ndefault = "{self.connection}"\n\n'
            f'[superlink.{self.connection}]\naddress = "127.0.0.1:{self.port}"\ninsecure = true\n'
        )
        command = [
            _executable("flower-superlink"),
            "--insecure",
            "--simulation",
            "--isolation",
            "subprocess",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--database",
            ":flwr-in-memory:",
            "--disable-runtime-dependency-installation",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flower-superlink exited early; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=0.5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise TimeoutError(
            f"flower-superlink not healthy after {self.startup_timeout} s; see {self.log_path}"
        )

    def run(
        self,
        app_dir: Path,
        run_config: Mapping[str, object],
        num_supernodes: int,
        client_cpus: int = 1,
        timeout: float | None = None,
        extra_federation_config: Mapping[str, object] | None = None,
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
        """
        federation = {"num-supernodes": num_supernodes, "client-resources-num-cpus": client_cpus}
        federation.update(extra_federation_config or {})
        command = [
            _executable("flwr"),
            "run",
            str(Path(app_dir).resolve()),
            self.connection,
            "--stream",
            "--run-config",
            toml_overrides(run_config),
            "--federation-config",
            toml_overrides(federation),
        ]
        return subprocess.run(
            command,
            env=self.env,
            cwd=self.flwr_home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stop(self) -> None:
        """Stop the SuperLink and everything it started (SuperExec, simulation, Ray)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
