"""Test-wide settings: Flower never phones home, its home stays inside the project (one per
pytest-xdist worker), and tests that share an expensive fixture share a worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flwr_split.launch.processes import FLOWER_ENV

for _key, _value in FLOWER_ENV.items():
    os.environ.setdefault(_key, _value)
_HOME = Path(
    os.environ.get("FLWR_HOME") or Path(__file__).resolve().parent.parent / ".flwr-home" / "tests"
)
if "PYTEST_XDIST_WORKER" in os.environ:
    _HOME = _HOME / f"xdist-{os.environ['PYTEST_XDIST_WORKER']}"
os.environ["FLWR_HOME"] = str(_HOME)

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
