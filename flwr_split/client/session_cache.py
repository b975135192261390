"""Optional per-process cache of client sessions: a speed-up, never a source of truth.

A SuperNode keeps nothing between messages, so the client rebuilds its session
from ``context.state`` and recomputes the forward of the slice it back-propagates.
Where one process serves many messages (Ray actors, the in-process grid), this
cache keeps the last session of each node and the autograd graph of its last
forward, keyed by a token and a save counter that are stored in
``context.state``: an entry is used only if it belongs to exactly the state
the message arrives with, so a miss (another actor, a new process) just
rebuilds, and results are identical either way.

Set ``FLWR_SPLIT_CLIENT_CACHE=0`` to disable it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

CacheKey = tuple[int, int, str]
"""``(run_id, node_id, state token)``."""


@dataclass
class CacheEntry:
    """A session as it was right after it saved state number ``seq``."""

    seq: int
    session: Any


class SessionCache:
    """A bounded LRU map from `CacheKey` to the latest `CacheEntry`.

    Parameters
    ----------
    max_entries : int (default: 1024)
        Sessions kept; the least recently used is dropped first.
    enabled : bool (default: True)
        When False, `lookup` always misses and `store` keeps nothing.
    """

    def __init__(self, max_entries: int = 1024, enabled: bool = True) -> None:
        self.max_entries = max_entries
        self.enabled = enabled
        self._entries: OrderedDict[CacheKey, CacheEntry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def lookup(self, key: CacheKey, seq: int) -> Any | None:
        """Return the cached session saved as state ``seq``, or None."""
        entry = self._entries.get(key) if self.enabled else None
        if entry is None or entry.seq != seq:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry.session

    def store(self, key: CacheKey, seq: int, session: Any) -> None:
        """Remember ``session`` as the one that saved state ``seq``."""
        if not self.enabled:
            return
        self._entries[key] = CacheEntry(seq, session)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def evict(self, key: CacheKey) -> None:
        """Forget ``key`` (after a failed handler left its session half-updated)."""
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


SESSION_CACHE = SessionCache(enabled=os.environ.get("FLWR_SPLIT_CLIENT_CACHE", "1") != "0")
"""The process-wide cache the ClientApp handlers use."""
