"""Which of our processes listen on an address other than loopback (Linux ``/proc``).

Every Flower and Ray process a launcher of ours starts carries `LAUNCH_ID_VAR`
in its environment (`flwr_split.launch.processes`). `exposed_listeners` lists
the TCP sockets such processes (and the descendants of given processes) listen
on whose address is not loopback
(``127.0.0.0/8``, ``::1``): ``0.0.0.0`` / ``::`` (every interface) or the
machine's own address. `ListenerWatch` samples it in a thread while a block
runs, so a test can fail on any listener that was open for a moment.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from flwr_split.launch.periodic import PeriodicSampler
from flwr_split.launch.processes import _pids, command_line, descendants, launch_id_of

TCP_TABLES = {"/proc/net/tcp": 4, "/proc/net/tcp6": 6}
"""The kernel's TCP socket tables and the IP version of their addresses."""
LISTEN_STATE = "0A"
"""``st`` column of a listening socket in those tables."""


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket and the process that holds it."""

    pid: int
    command: str
    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def _address(hex_address: str, version: int) -> str:
    """Decode ``/proc/net/tcp*``'s hex address (32-bit words in host byte order)."""
    raw = bytes.fromhex(hex_address)
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    packed = b"".join(word[::-1] if sys.byteorder == "little" else word for word in words)
    return str(ipaddress.IPv4Address(packed) if version == 4 else ipaddress.IPv6Address(packed))


def is_loopback(address: str) -> bool:
    """Return whether ``address`` reaches this host only (``127.0.0.0/8``, ``::1``, mapped)."""
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def listening_sockets() -> dict[int, tuple[str, int]]:
    """Return ``{inode: (address, port)}`` of every listening TCP socket of this network."""
    found: dict[int, tuple[str, int]] = {}
    for table, version in TCP_TABLES.items():
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN_STATE:
                hex_address, hex_port = fields[1].split(":")
                found[int(fields[9])] = (_address(hex_address, version), int(hex_port, 16))
    return found


def _socket_inodes(pid: int) -> set[int]:
    """Return the inodes of the sockets process ``pid`` holds open (empty if unreadable)."""
    inodes = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _is_ours(pid: int, launch_ids: Collection[str] | None) -> bool:
    mark = launch_id_of(pid)
    return mark is not None and (launch_ids is None or mark in launch_ids)


def _held_by_ours(
    sockets: dict[int, tuple[str, int]],
    roots: Sequence[int],
    launch_ids: Collection[str] | None,
) -> set[Listener]:
    """Return those of ``sockets`` that a process of ours holds (see `our_listeners`)."""
    found: set[Listener] = set()
    if not sockets:
        return found
    family = set(roots) | descendants(roots)
    for pid in _pids():
        held = _socket_inodes(pid) & sockets.keys()
        if held and (pid in family or _is_ours(pid, launch_ids)):
            command = command_line(pid).strip()[:200]
            found.update(Listener(pid, command, *sockets[inode]) for inode in held)
    return found


def our_listeners(
    roots: Sequence[int] = (), launch_ids: Collection[str] | None = None
) -> set[Listener]:
    """Return every listening socket held by a process of ours, on any address.

    A process is ours when its environment has `LAUNCH_ID_VAR` (everything our
    launchers start) with one of ``launch_ids`` (None: any launch), or it is one
    of ``roots`` or descends from one (what a process starts itself, e.g. Ray by
    an in-process ``ray.init()``).
    Empty where ``/proc`` is not available (not Linux).
    """
    return _held_by_ours(listening_sockets(), roots, launch_ids)


def exposed_sockets() -> dict[int, tuple[str, int]]:
    """Return the `listening_sockets` whose address is not loopback, whoever holds them."""
    return {
        inode: where for inode, where in listening_sockets().items() if not is_loopback(where[0])
    }


def exposed_listeners(
    roots: Sequence[int] = (), launch_ids: Collection[str] | None = None
) -> set[Listener]:
    """Return the `our_listeners` whose address is not loopback."""
    return _held_by_ours(exposed_sockets(), roots, launch_ids)


class ListenerWatch(PeriodicSampler):
    """Collects `exposed_listeners` every ``interval`` seconds while a ``with`` block runs.

    Parameters
    ----------
    interval : float (default: 0.5)
        Seconds between two samples; one more sample is taken on entering and on leaving.
    roots : Sequence[int] or None (default: None)
        Processes whose descendants are ours too (`our_listeners`); None: this process.
    launch_ids : Collection[str] or None (default: None)
        Launches whose processes are ours (read at each sample, so a live set such
        as `flwr_split.launch.processes.LAUNCHED_HERE` works); None: any launch.
    """

    def __init__(
        self,
        interval: float = 0.5,
        roots: Sequence[int] | None = None,
        launch_ids: Collection[str] | None = None,
    ) -> None:
        super().__init__(interval)
        self.roots = tuple(roots) if roots is not None else (os.getpid(),)
        self.launch_ids = launch_ids
        self.found: set[Listener] = set()
        self._seen: set[int] = set()

    def sample(self) -> None:
        """Add the exposed listeners that appeared since the last sample to ``found``."""
        # a socket's owner is looked up once, when it first appears: scanning every
        # process's descriptors costs ~10 ms, the socket tables well under 1 ms
        fresh = {
            inode: where
            for inode, where in self.exposed_sockets().items()
            if inode not in self._seen
        }
        self._seen |= fresh.keys()
        self.found |= self.held_by_ours(fresh)

    def exposed_sockets(self) -> dict[int, tuple[str, int]]:
        """Return the non-loopback listening sockets now (`exposed_sockets`)."""
        return exposed_sockets()

    def held_by_ours(self, sockets: dict[int, tuple[str, int]]) -> set[Listener]:
        """Return those of ``sockets`` that a process of ours holds (`our_listeners`)."""
        return _held_by_ours(sockets, self.roots, self.launch_ids)
