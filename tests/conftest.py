"""Test-wide settings: Flower never phones home, its home stays inside the project (one per
pytest-xdist worker), torch runs one intra-op thread per worker, tests that share an
expensive fixture share a worker, and no process of ours listens beyond loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from flwr_split.launch.listeners import Listener, ListenerWatch
from flwr_split.launch.processes import FLOWER_ENV, LAUNCHED_HERE
from flwr_split.launch.ray_nodes import RAY_ON_LOOPBACK

# Ray started in a test's own process keeps to 127.0.0.1 (Ray reads this when imported)
for _key, _value in {**FLOWER_ENV, **RAY_ON_LOOPBACK}.items():
    os.environ.setdefault(_key, _value)
_HOME = Path(
    os.environ.get("FLWR_HOME") or Path(__file__).resolve().parent.parent / ".flwr-home" / "tests"
)
if "PYTEST_XDIST_WORKER" in os.environ:
    _HOME = _HOME / f"xdist-{os.environ['PYTEST_XDIST_WORKER']}"
os.environ["FLWR_HOME"] = str(_HOME)

# The workers share two cores (pyproject's ``-n``): with torch's default of one
# thread per core, idle OpenMP threads spin on the core another worker needs
# (an in-process digits run took 129 s on two threads, 7 s on one, at load 10).
# The Flower processes the tests start (ServerApps, ClientApps) inherit one thread
# too. Tests about thread counts set their own (tests/codecs/test_threads.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

WIDEST_FIRST = ("session", "package", "module", "class")
"""Scopes of a fixture that outlives one test, widest first."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test that uses a shared fixture of ours into that fixture's ``xdist_group``.

    Under ``--dist loadgroup`` (pyproject's ``addopts``) a group runs on one
    worker, so a module- or session-scoped fixture (a deployment cluster's run,
    a data stand-in) is built once, not once per worker. A test using several
    goes with the widest-scoped one (``insecure`` goes with ``shared_deployment``).
    Fixtures of pytest and its plugins (empty ``baseid``) are not ours.
    Then the slow units go first (`_slow_first`).
    """
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        shared = [
            (WIDEST_FIRST.index(last.scope), f"{last.baseid}::{name}")
            for name, definitions in info.name2fixturedefs.items()
            for last in definitions[-1:]
            if last.baseid and last.scope in WIDEST_FIRST
        ]
        if shared:
            item.add_marker(pytest.mark.xdist_group(min(shared)[1]))
    _slow_first(items)


def scheduling_unit(item: pytest.Item) -> str:
    """What xdist schedules ``item`` with: its ``xdist_group``, or the test alone."""
    group = item.get_closest_marker("xdist_group")
    return group.args[0] if group else item.nodeid


def _slow_first(items: list[pytest.Item]) -> None:
    """Move every slow test, and every test of a group that holds one, to the front.

    The workers then start the long units (clusters, Ray runs, trainings) first
    and end on short tests, so neither idles while the other finishes a long one
    (pyproject's ``--no-loadscope-reorder`` keeps this order; otherwise xdist
    would queue the groups with the most tests first). The sort is stable.
    """
    slow = {scheduling_unit(item) for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: scheduling_unit(item) not in slow)


# Every process our launchers start (SuperLinks, SuperNodes, Ray and its workers)
# must listen on loopback only. One watch per process samples those of its own
# launches and its descendants (not other jobs' on a shared machine) session long,
# from the moment this file is imported (pytest documents `pytest_sessionstart` as
# called for "initial" conftests only, and a session fixture would put every test
# into one xdist group, see above); each test fails on what was found while it
# ran, its shared fixtures' setup included.
_LISTENERS = ListenerWatch(interval=1.0, launch_ids=LAUNCHED_HERE).__enter__()
_REPORTED: set[Listener] = set()


def _unreported() -> str:
    fresh = _LISTENERS.found - _REPORTED
    _REPORTED.update(fresh)
    return "\n".join(f"  {found} pid {found.pid}: {found.command}" for found in fresh)


@pytest.fixture(autouse=True)
def loopback_only() -> Iterator[None]:
    """Fail the test if a process of ours listened on an address other than loopback."""
    yield
    exposed = _unreported()
    assert not exposed, f"processes of ours listened beyond loopback:\n{exposed}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _LISTENERS.__exit__(None, None, None)
    exposed = _unreported()
    if exposed:
        print(f"\nprocesses of ours listened beyond loopback:\n{exposed}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
