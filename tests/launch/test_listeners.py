"""`flwr_split.launch.listeners`: the kernel's socket tables decoded, listeners attributed."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time

import pytest

from flwr_split.launch import listeners
from flwr_split.launch.listeners import ListenerWatch, exposed_listeners, is_loopback, our_listeners
from flwr_split.launch.processes import LAUNCH_ID_VAR
from flwr_split.launch.ray_nodes import RAY_ON_LOOPBACK
from flwr_split.launch.simulation import SimulationSuperLink

LINUX = pytest.mark.skipif(not os.path.isdir("/proc/net"), reason="reads Linux /proc")

# a listener that prints its port and waits for stdin to close (loopback only, ever)
LISTEN = (
    "import socket, sys\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "print(s.getsockname()[1], flush=True); sys.stdin.read()\n"
)


@pytest.mark.parametrize(
    ("hex_address", "version", "expected"),
    [
        ("0100007F", 4, "127.0.0.1"),
        ("00000000", 4, "0.0.0.0"),
        ("020200C0", 4, "192.0.2.2"),
        ("00000000000000000000000001000000", 6, "::1"),
        ("00000000000000000000000000000000", 6, "::"),
        ("0000000000000000FFFF00000100007F", 6, "::ffff:127.0.0.1"),
    ],
)
def test_addresses_of_the_tcp_tables_decode(hex_address, version, expected):
    if sys.byteorder != "little":
        pytest.skip("the table rows above are a little-endian kernel's")
    decoded = listeners._address(hex_address, version)
    assert ipaddress.ip_address(decoded) == ipaddress.ip_address(expected)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.0.2.2", False),
        ("::ffff:192.0.2.2", False),
    ],
)
def test_only_loopback_addresses_count_as_loopback(address, loopback):
    assert is_loopback(address) is loopback


def _listener(marked: bool) -> tuple[subprocess.Popen[str], int]:
    env = {key: value for key, value in os.environ.items() if key != LAUNCH_ID_VAR}
    if marked:
        env[LAUNCH_ID_VAR] = "test-listeners"
    process = subprocess.Popen(
        [sys.executable, "-c", LISTEN],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    return process, int(process.stdout.readline())


@LINUX
def test_marked_processes_and_children_of_roots_are_ours_and_loopback_is_not_exposed():
    marked, marked_port = _listener(marked=True)
    unmarked, unmarked_port = _listener(marked=False)
    try:
        with ListenerWatch(interval=0.05) as watch:
            ours = our_listeners()
        assert any(
            found.pid == marked.pid and found.port == marked_port and found.address == "127.0.0.1"
            for found in ours
        ), ours
        assert not any(found.pid == unmarked.pid for found in ours)
        # only its own launch counts where launches are named
        assert any(
            found.pid == marked.pid for found in our_listeners(launch_ids={"test-listeners"})
        )
        assert not any(found.pid == marked.pid for found in our_listeners(launch_ids={"other"}))
        # ... but a child of a root is ours
        family = our_listeners(roots=(os.getpid(),))
        assert any(found.pid == unmarked.pid and found.port == unmarked_port for found in family)
        assert not any(found.pid in (marked.pid, unmarked.pid) for found in exposed_listeners())
        assert not any(found.pid == marked.pid for found in watch.found)
    finally:
        for process in (marked, unmarked):
            process.communicate("")
    assert unmarked_port != marked_port


def test_the_watch_reports_an_exposed_socket_and_looks_up_its_owner_once():
    # a subclass, not a monkeypatched module: tests/conftest.py's own watch runs meanwhile
    exposed = listeners.Listener(1, "gcs_server", "0.0.0.0", 6379)
    lookups = []

    class Watch(ListenerWatch):
        def exposed_sockets(self):
            return {42: ("0.0.0.0", 6379)}

        def held_by_ours(self, sockets):
            lookups.append(dict(sockets))
            return {exposed} if 42 in sockets else set()

    with Watch(interval=0.01) as watch:
        time.sleep(0.1)
    assert watch.found == {exposed}
    assert [lookup for lookup in lookups if lookup] == [{42: ("0.0.0.0", 6379)}]


def test_listening_sockets_include_a_socket_of_this_process():
    if not os.path.exists("/proc/net/tcp"):
        pytest.skip("reads Linux /proc")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert ("127.0.0.1", port) in listeners.listening_sockets().values()
    assert ("127.0.0.1", port) not in listeners.listening_sockets().values()


@pytest.mark.parametrize(
    ("ray_address", "on_loopback"),
    [(None, True), ("127.0.0.1:6379", True), ("10.0.0.5:6379", False)],
)
def test_ray_of_a_simulation_superlink_keeps_to_loopback_unless_it_joins_another_host(
    tmp_path, monkeypatch, ray_address, on_loopback
):
    for key in RAY_ON_LOOPBACK:
        monkeypatch.delenv(key, raising=False)  # tests/conftest.py sets it for the tests' own Ray
    superlink = SimulationSuperLink(tmp_path, ray_address=ray_address)
    kept = all(superlink.env.get(key) == value for key, value in RAY_ON_LOOPBACK.items())
    assert kept is on_loopback


def test_a_listener_prints_as_an_address_a_client_would_dial():
    assert str(listeners.Listener(1, "raylet", "0.0.0.0", 6379)) == "0.0.0.0:6379"
    assert str(listeners.Listener(1, "raylet", "::", 6379)) == "[::]:6379"
