"""Flower processes on loopback with a log each, `flwr` CLI calls, and a stop that leaves none.

`flwr run` with the ``:local:`` connection leaves a detached SuperLink daemon
behind on a fixed port. `SimulationSuperLink` instead starts its own
``flower-superlink --simulation`` on a free 127.0.0.1 port, owned by this
process and stopped on exit, and writes a project-local ``FLWR_HOME`` with a
connection to it, so runs share no state through ``~/.flwr``.

`FlowerProcesses` holds what every launcher needs: Flower processes with a log
file each, in their own session, a health wait, a ``config.toml`` connection,
``flwr`` CLI calls, and a stop that leaves nothing behind. Flower's SuperLinks
and SuperNodes start their SuperExec in a *new* session, which starts the
ServerApp/ClientApp processes, so killing our process groups is not enough.
Every process of ours therefore carries a launch id in its environment
(`LAUNCH_ID_VAR`, inherited by everything it spawns), and `FlowerProcesses.stop`
also ends every process on the machine that carries it (Linux ``/proc``).
`flwr_split.launch.simulation.SimulationSuperLink` and
`flwr_split.launch.deployment.DeploymentCluster` build on it.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from flwr_split.launch.stream import stream_lines

FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
"""Environment every Flower process of ours gets: no telemetry, no network at run time."""

LAUNCH_ID_VAR = "FLWR_SPLIT_LAUNCH_ID"
"""Environment variable marking every process of one `FlowerProcesses` (and its children)."""
LAUNCHED_HERE: set[str] = set()
"""Launch ids of the `FlowerProcesses` made in this process (for `flwr_split.launch.listeners`)."""


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


# ------------------------------------------------------------ process table (Linux /proc)
def _stat(pid: int) -> tuple[str, int] | None:
    """Return ``(state, ppid)`` of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def launch_id_of(pid: int) -> str | None:
    """Return the ``LAUNCH_ID_VAR`` in a process's environment (None: none, or unreadable)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = f"{LAUNCH_ID_VAR}=".encode()
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return None


def marked_processes(launch_id: str) -> set[int]:
    """Return the live (non-zombie) processes whose environment has ``LAUNCH_ID_VAR=launch_id``.

    Empty where ``/proc`` is not available (not Linux).
    """
    found = set()
    for pid in _pids():
        if launch_id_of(pid) == launch_id:
            stat = _stat(pid)
            if stat is not None and stat[0] not in ("Z", "X"):
                found.add(pid)
    return found


def descendants(roots: Sequence[int]) -> set[int]:
    """Return the live descendants of ``roots`` (not the roots themselves), from ``/proc``."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None and stat[0] not in ("Z", "X"):
            children.setdefault(stat[1], []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_line(pid: int) -> str:
    """Return the command line of a live process ("" if it is gone or a zombie)."""
    stat = _stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return ""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


# ----------------------------------------------------------------------- the base class
class FlowerProcesses:
    """Flower processes of one ``with`` block, with a project-local ``FLWR_HOME``.

    Subclasses start their processes in ``__enter__`` with `start` and wait
    for them with `wait_until` / `wait_healthy`; ``__exit__`` (or `stop`)
    ends them all, and everything they spawned, even if the block raised.

    Parameters
    ----------
    flwr_home : Path
        ``FLWR_HOME`` of every process; holds ``config.toml`` and one log per process.
    connection : str
        Name of the SuperLink connection written to ``config.toml``.
    stop_timeout : float (default: 15.0)
        Seconds between SIGTERM and SIGKILL when stopping.
    """

    def __init__(self, flwr_home: Path, connection: str, stop_timeout: float = 15.0) -> None:
        self.flwr_home = Path(flwr_home).resolve()
        self.connection = connection
        self.stop_timeout = stop_timeout
        self.launch_id = uuid.uuid4().hex
        LAUNCHED_HERE.add(self.launch_id)
        self.env = flower_env(self.flwr_home)
        self.env[LAUNCH_ID_VAR] = self.launch_id
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, list[str]] = {}
        self.log_paths: dict[str, Path] = {}
        self.log_offsets: dict[str, int] = {}

    # -------------------------------------------------------------- starting
    def start(
        self,
        name: str,
        command: list[str],
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``command`` in its own session, output appended to ``<flwr_home>/<name>.log``.

        ``env`` adds to (or overrides) our environment; ``cwd`` defaults to ``flwr_home``.
        """
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        log_path = self.flwr_home / f"{name}.log"
        self.log_offsets[name] = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                env={**self.env, **(env or {})},
                cwd=cwd or self.flwr_home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        self.commands[name] = list(command)
        self.log_paths[name] = log_path
        return process

    def read_log(self, name: str) -> str:
        """Return what process ``name`` has logged so far (not earlier runs' lines)."""
        with open(self.log_paths[name], "rb") as log:
            log.seek(self.log_offsets[name])
            return log.read().decode(errors="replace")

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``condition`` until true; raise if a process exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not condition():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with code {process.returncode} while waiting for "
                        f"{what}; see {self.log_paths[name]}"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {what} after {timeout} s; logs in {self.flwr_home}")
            time.sleep(0.1)

    def wait_healthy(self, port: int, timeout: float, cafile: Path | None = None) -> None:
        """Wait until ``/health`` on 127.0.0.1:``port`` answers 200 (HTTPS if ``cafile``)."""
        scheme = "https" if cafile else "http"
        url = f"{scheme}://127.0.0.1:{port}/health"
        context = ssl.create_default_context(cafile=str(cafile)) if cafile else None

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=0.5, context=context) as response:
                    return response.status == 200
            except (OSError, http.client.HTTPException):
                return False

        self.wait_until(healthy, timeout, f"healthy SuperLink at {url}")

    # ------------------------------------------------------------ flwr CLI
    def write_connection(
        self, address: str, insecure: bool, root_certificates: Path | None = None
    ) -> None:
        """Write ``config.toml`` with one default connection ``self.connection`` to ``address``."""
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        lines = [
            "[superlink]",
            f'default = "{self.connection}"',
            "",
            f"[superlink.{self.connection}]",
            f'address = "{address}"',
        ]
        if insecure:
            lines.append("insecure = true")
        if root_certificates is not None:
            lines.append(f'root-certificates = "{Path(root_certificates).resolve()}"')
        (self.flwr_home / "config.toml").write_text("\n".join(lines) + "\n")

    def flwr(
        self,
        args: list[str],
        timeout: float | None = None,
        check: bool = False,
        on_line: Callable[[str], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``flwr ARGS`` with our environment in ``FLWR_HOME``; return the finished process.

        With ``on_line``, each line of its output (stdout and stderr, merged into
        ``stdout``) goes to ``on_line`` as soon as it is printed (`stream_lines`).
        """
        command = [_executable("flwr"), *args]
        if on_line is not None:
            done = stream_lines(command, on_line, env=self.env, cwd=self.flwr_home, timeout=timeout)
        else:
            done = subprocess.run(
                command,
                env=self.env,
                cwd=self.flwr_home,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"flwr {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )
        return done

    def flwr_run(
        self,
        app_dir: Path,
        run_config: Mapping[str, object],
        extra_args: Sequence[str] = (),
        timeout: float | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``flwr run APP <connection> --stream --run-config ...`` and return it.

        ``on_line`` takes each line of its output as it comes (see `flwr`).
        """
        args = [
            "run",
            str(Path(app_dir).resolve()),
            self.connection,
            "--stream",
            "--run-config",
            toml_overrides(run_config),
            *extra_args,
        ]
        return self.flwr(args, timeout=timeout, on_line=on_line)

    # -------------------------------------------------------------- stopping
    def alive(self) -> set[int]:
        """Return the live processes started by us or by them (by launch id and by parentage)."""
        ours = {p.pid for p in self.processes.values() if p.poll() is None}
        return ours | descendants(sorted(ours)) | marked_processes(self.launch_id)

    def stop(self) -> None:
        """End every process we started and everything they spawned: SIGTERM, then SIGKILL.

        The process tree is recorded first, so a grandchild whose parent exits
        first (and that is re-parented away from our tree) is still ended.
        """
        deadline = time.monotonic() + self.stop_timeout
        tree = {pid: command_line(pid) for pid in self.alive()}

        def remaining() -> set[int]:
            recorded = {pid for pid, cmd in tree.items() if cmd and command_line(pid) == cmd}
            return self.alive() | recorded

        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    pass
        _signal_all(remaining(), signal.SIGTERM)
        while time.monotonic() < deadline and remaining():
            time.sleep(0.1)
        for _ in range(5):
            leftover = remaining()
            if not leftover:
                break
            for process in self.processes.values():
                if process.poll() is None:
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
            _signal_all(leftover, signal.SIGKILL)
            time.sleep(0.2)
        else:
            survivors = {pid: command_line(pid) for pid in remaining()}
            if survivors:
                warnings.warn(f"processes still running after SIGKILL: {survivors}", stacklevel=2)
        for process in self.processes.values():
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self.processes.clear()

    def __enter__(self) -> FlowerProcesses:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def superlink_command(port: int, *mode_args: str) -> list[str]:
    """Return a ``flower-superlink`` command on 127.0.0.1:``port`` with an in-memory state.

    ``mode_args`` add the security and mode flags (``--insecure``, ``--simulation``,
    the TLS files, ``--enable-supernode-auth``).
    """
    return [
        _executable("flower-superlink"),
        *mode_args,
        "--isolation",
        "subprocess",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--database",
        ":flwr-in-memory:",
        "--disable-runtime-dependency-installation",
    ]
