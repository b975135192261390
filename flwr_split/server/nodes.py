"""Helpers shared by SL strategies: waiting for nodes and one push/pull exchange."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence

from flwr.app import Message
from flwr.serverapp import Grid

from flwr_split.server.pull import pull_replies

logger = logging.getLogger("flwr").getChild(__name__)


def wait_for_nodes(grid: Grid, min_nodes: int, timeout: float, poll: float = 0.2) -> list[int]:
    """Return the node ids once at least ``min_nodes`` are registered.

    Flower may start the ServerApp before all SuperNodes have registered, so a
    strategy must wait. Raises `TimeoutError` after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= min_nodes:
            return nodes
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(nodes)} of {min_nodes} nodes registered in {timeout} s")
        time.sleep(poll)


PULL_SHARE = 0.2
"""Most of an exchange's wall time that pulling replies may take (see `exchange`)."""


def exchange(
    grid: Grid,
    messages: Iterable[Message],
    timeout: float,
    poll: float = 0.005,
    budgets: Sequence[int] = (),
) -> dict[int, Message]:
    """Push ``messages`` and pull their replies, keyed by the destination node id.

    Waits at most ``timeout`` seconds; nodes that have not replied by then are
    missing from the result (and logged). Replies may be error replies: a
    reply over its budget (``budgets[i]`` bytes for ``messages[i]``, see
    `flwr_split.server.pull`) is one.

    Pulls at least every ``poll`` seconds, and less often when a pull itself is
    slow: after a pull that took ``t`` seconds it waits ``t * (1 / PULL_SHARE - 1)``,
    so pulling holds the SuperLink's state at most ``PULL_SHARE`` of the time. A
    pull asks for every message still waiting, and Flower's state checks each
    under its lock: polled every 5 ms with 10,000 messages waiting, pulls held
    that lock nearly all the time and starved the threads that deliver the
    messages and store their replies (docs/scale.md).
    """
    messages = list(messages)
    if not messages:
        return {}
    ids = list(grid.push_messages(messages))
    node_of = {mid: msg.metadata.dst_node_id for mid, msg in zip(ids, messages, strict=True)}
    limits = dict(zip(ids, budgets, strict=False))
    waiting = dict(zip(ids, messages, strict=True))
    replies: dict[int, Message] = {}
    deadline = time.monotonic() + timeout
    while waiting:
        pulled_at = time.monotonic()
        for asked, reply in pull_replies(grid, waiting, limits).items():
            if waiting.pop(asked, None) is not None:
                replies[node_of[asked]] = reply
        now = time.monotonic()
        if not waiting or now > deadline:
            break
        time.sleep(min(deadline - now, max(poll, (now - pulled_at) * (1 / PULL_SHARE - 1))))
    if waiting:
        logger.warning(
            "no reply within %.1f s from nodes %s", timeout, sorted(node_of[m] for m in waiting)
        )
    return replies
