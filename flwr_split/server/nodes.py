"""Helpers shared by SL strategies: waiting for nodes and one push/pull exchange."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from flwr.app import Message
from flwr.serverapp import Grid

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


def exchange(
    grid: Grid, messages: Iterable[Message], timeout: float, poll: float = 0.005
) -> dict[int, Message]:
    """Push ``messages`` and pull their replies, keyed by the destination node id.

    Waits at most ``timeout`` seconds; nodes that have not replied by then are
    missing from the result (and logged). Replies may be error replies.
    """
    messages = list(messages)
    if not messages:
        return {}
    ids = list(grid.push_messages(messages))
    node_of = {mid: msg.metadata.dst_node_id for mid, msg in zip(ids, messages, strict=True)}
    waiting = set(ids)
    replies: dict[int, Message] = {}
    deadline = time.monotonic() + timeout
    while waiting:
        for reply in grid.pull_messages(waiting):
            mid = reply.metadata.reply_to_message_id
            if mid in waiting:
                waiting.discard(mid)
                replies[node_of[mid]] = reply
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(poll)
    if waiting:
        logger.warning(
            "no reply within %.1f s from nodes %s", timeout, sorted(node_of[m] for m in waiting)
        )
    return replies
