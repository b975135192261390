"""Tasks whose data comes over the network: a node that cannot reach it says so at once.

A server's config may name such a task (``shakespeare_leaf``). Before its loader
runs, the client tries a TCP connection to each address the task declares
(`SplitTask.downloads`) for at most `PROBE_SECONDS`, name resolution included;
if one fails, the message gets an error reply naming the address, instead of
a loader that waits on the network. A node that keeps a local copy and runs
offline sets ``HF_HUB_OFFLINE=1`` (or ``HF_DATASETS_OFFLINE=1``): the Hugging
Face loaders then read only their cache, and no connection is tried.
"""

from __future__ import annotations

import os
import socket
import threading

PROBE_SECONDS = 3.0
"""Longest wait for one address of a downloading task."""
OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
"""Environment variables by which a node declares it loads from its cache only."""
TRUE_WORDS = ("1", "true", "yes", "on")
"""Values of those variables that mean "offline" (as the Hugging Face libraries read them)."""


def unreachable(address: str, timeout: float = PROBE_SECONDS) -> str | None:
    """Return why ``host:port`` takes no TCP connection within ``timeout`` s, None if it does."""
    host, _, port = address.rpartition(":")
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                outcome.append(None)
        except (OSError, ValueError) as exc:
            outcome.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=connect, daemon=True)  # resolution has no timeout
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else f"no connection within {timeout:g} s"


def check_downloads(task_name: str, addresses: tuple[str, ...]) -> None:
    """Raise `ValueError` if this node cannot reach an address a task downloads from.

    Nothing is tried when ``addresses`` is empty or the node is declared
    offline (`OFFLINE_ENV`).
    """
    if any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in OFFLINE_ENV
    ):
        return
    for address in addresses:
        reason = unreachable(address, PROBE_SECONDS)
        if reason is not None:
            raise ValueError(
                f"task {task_name!r} downloads its data from {address}, which this node "
                f"cannot reach ({reason}); use an offline task or a node with network"
            )
