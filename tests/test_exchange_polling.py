"""`exchange` polls less often when a pull is slow (`PULL_SHARE`), and keeps its timeout."""

from __future__ import annotations

from types import SimpleNamespace

import flwr_split.server.nodes as nodes


class Clock:
    """A virtual clock: ``sleep`` and the grid's pulls advance it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pulls: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


class SlowGrid:
    """A grid whose pulls take ``pull_s`` virtual seconds and never find a reply."""

    def __init__(self, clock: Clock, pull_s: float) -> None:
        self.clock = clock
        self.pull_s = pull_s

    def push_messages(self, messages: list[SimpleNamespace]) -> list[str]:
        return [f"m{i}" for i in range(len(messages))]

    def pull_messages(self, message_ids: list[str]) -> list[SimpleNamespace]:
        self.clock.pulls.append(self.clock.now)
        self.clock.now += self.pull_s
        return []


def pulls_within(monkeypatch, pull_s: float, timeout: float) -> Clock:
    clock = Clock()
    monkeypatch.setattr(nodes, "time", clock)
    messages = [SimpleNamespace(metadata=SimpleNamespace(dst_node_id=n)) for n in (1, 2)]
    grid, sent = SlowGrid(clock, pull_s), messages
    assert nodes.exchange(grid, sent, timeout) == {}  # type: ignore[arg-type]
    return clock


def test_fast_pulls_run_at_the_poll_interval(monkeypatch):
    clock = pulls_within(monkeypatch, pull_s=0.0001, timeout=1.0)
    assert 180 <= len(clock.pulls) <= 201  # every 5 ms


def test_slow_pulls_take_at_most_their_share_of_the_wall_time(monkeypatch):
    clock = pulls_within(monkeypatch, pull_s=0.05, timeout=10.0)
    busy = 0.05 * len(clock.pulls)
    assert busy <= nodes.PULL_SHARE * clock.now + 0.05  # 40 pulls, not 180 every 5 ms
    assert len(clock.pulls) >= 0.9 * nodes.PULL_SHARE * 10.0 / 0.05


def test_the_wait_after_a_slow_pull_never_passes_the_timeout(monkeypatch):
    clock = pulls_within(monkeypatch, pull_s=0.3, timeout=1.0)
    assert clock.now <= 1.0 + 0.3  # the last pull may start at the deadline
    assert clock.pulls[-1] <= 1.0
