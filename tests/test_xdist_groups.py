"""Tests that share a cluster fixture run on one pytest-xdist worker, so each cluster runs once;
slow units are queued first."""

from __future__ import annotations

import pytest

from tests.conftest import scheduling_unit

CLUSTER_FIXTURES = ("shared_deployment", "secure", "killed")
"""Fixtures of tests/app that each start a deployment cluster and run a job on it."""


def test_the_tests_of_one_cluster_fixture_share_one_xdist_group(request):
    items = [item for item in request.session.items if item.nodeid.startswith("tests/app/")]
    # In a pytest-xdist worker under --dist loadgroup, the scheduler sees a group as the node
    # id's "@<group>" suffix; pytest-xdist 3.8 cannot add it under pytest 9.2 (pyproject pins).
    loadgroup = getattr(request.config.option, "loadgroup", False)
    groups: dict[str, set[tuple[str, ...]]] = {}
    for item in items:
        for fixture in CLUSTER_FIXTURES:
            if fixture in item.fixturenames:
                marks = tuple(mark.args[0] for mark in item.iter_markers("xdist_group"))
                groups.setdefault(fixture, set()).add(marks)
                if loadgroup and marks:
                    assert item.nodeid.endswith(f"@{marks[0]}"), item.nodeid
    if not groups:
        pytest.skip("no test of a cluster fixture is collected in this session (-m 'not slow'?)")
    assert set(groups) == set(CLUSTER_FIXTURES), groups
    for fixture, marks in groups.items():
        assert len(marks) == 1 and len(next(iter(marks))) == 1, (fixture, marks)


def test_slow_tests_and_the_tests_of_their_groups_come_first(request):
    """The workers start the long units first (tests/conftest.py ``_slow_first``)."""
    items = request.session.items
    slow = {scheduling_unit(item) for item in items if item.get_closest_marker("slow")}
    if not slow:
        pytest.skip("no slow test is collected in this session")
    is_slow = [scheduling_unit(item) in slow for item in items]
    first_rest = is_slow.index(False) if False in is_slow else len(items)
    assert not any(is_slow[first_rest:])
