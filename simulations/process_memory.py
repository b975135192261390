"""Peak memory of a set of processes (RSS and PSS summed over them), sampled from ``/proc``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from flwr_split.launch.periodic import PeriodicSampler

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
PROCESS_KINDS = (
    ("flwr-simulation", "simulation"),
    ("flower-superlink", "superlink"),
    ("flower-superexec", "superexec"),
    ("ray::DashboardAgent", "ray_services"),
    ("ray::RuntimeEnvAgent", "ray_services"),
    ("ray::", "ray_worker"),
    ("raylet", "ray_services"),
    ("gcs_server", "ray_services"),
    ("/ray/", "ray_services"),
    ("flwr run", "flwr_cli"),
)
"""How `process_kind` names a process: (part of its command line, kind), the first match wins.

``simulation`` is the ``flwr-simulation`` process (the ServerApp and Flower's
simulation engine), ``ray_worker`` a Ray worker (a ClientApp actor or an idle
worker), ``ray_services`` Ray's raylet, GCS, dashboard, agents and monitors.
"""


def rss_bytes(pid: int) -> int:
    """Resident set size of a process in bytes (0 if it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return 0


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process in bytes: shared pages split among their users."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def command_text(pid: int) -> str:
    """Return a process's command line, its arguments joined by spaces ("" if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def process_kind(command: str) -> str:
    """Name the kind of process a command line belongs to (`PROCESS_KINDS`; else ``other``)."""
    return next((kind for part, kind in PROCESS_KINDS if part in command), "other")


class PeakMemory(PeriodicSampler):
    """Sample the summed RSS and PSS of ``pids()`` every ``interval`` seconds, keep the peaks.

    ``peak_rss_by_kind`` keeps, for each `process_kind`, the peak of the RSS
    summed over the processes of that kind (the kinds may peak at different
    times, so these peaks add up to at least ``peak_rss``).

    Parameters
    ----------
    pids : Callable[[], set[int]]
        Returns the processes to measure now (e.g. ``FlowerProcesses.alive``).
    interval : float (default: 0.25)
        Seconds between samples (one more on entering and on leaving).

    Examples
    --------
    >>> with PeakMemory(lambda: {os.getpid()}) as memory:  # doctest: +SKIP
    ...     work()
    >>> memory.peak_rss  # doctest: +SKIP
    """

    def __init__(self, pids: Callable[[], set[int]], interval: float = 0.25) -> None:
        super().__init__(interval)
        self.pids = pids
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self.peak_rss_by_kind: dict[str, int] = {}

    def sample(self) -> None:
        """Take one sample now."""
        pids = self.pids()
        by_kind: dict[str, int] = {}
        for pid in pids:
            kind = process_kind(command_text(pid))
            by_kind[kind] = by_kind.get(kind, 0) + rss_bytes(pid)
        for kind, rss in by_kind.items():
            self.peak_rss_by_kind[kind] = max(self.peak_rss_by_kind.get(kind, 0), rss)
        self.peak_rss = max(self.peak_rss, sum(by_kind.values()))
        self.peak_pss = max(self.peak_pss, sum(pss_bytes(pid) for pid in pids))
        self.peak_processes = max(self.peak_processes, len(pids))
