"""The client session cache changes speed only: cached and rebuilt runs are identical."""

from __future__ import annotations

import pytest
import torch

from flwr_split.client.session_cache import SESSION_CACHE, SessionCache
from tests.helpers import run_inprocess


def _run(sync: str):
    strategy, result, _ = run_inprocess(3, epochs=3, max_steps=12, sync=sync, eval_every=4)
    params = [p.detach().clone() for p in strategy.top.parameters()]
    return params, result.history


@pytest.mark.parametrize("sync", ["every_epoch", "every_step", "never"])
def test_runs_with_and_without_the_cache_are_identical(sync, monkeypatch):
    monkeypatch.setattr(SESSION_CACHE, "enabled", True)
    hits_before = SESSION_CACHE.hits
    cached_params, cached_history = _run(sync)
    assert SESSION_CACHE.hits > hits_before
    monkeypatch.setattr(SESSION_CACHE, "enabled", False)
    rebuilt_params, rebuilt_history = _run(sync)
    for a, b in zip(cached_params, rebuilt_params, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    for column in ("accuracy", "loss", "bytes_up", "bytes_down"):
        assert cached_history[column].tolist() == pytest.approx(rebuilt_history[column].tolist())


def test_cache_hits_only_the_exact_saved_state_and_stays_bounded():
    cache = SessionCache(max_entries=2)
    cache.store((1, 1, "t"), 3, "session")
    assert cache.lookup((1, 1, "t"), 3) == "session"
    assert cache.lookup((1, 1, "t"), 2) is None
    assert cache.lookup((1, 1, "other"), 3) is None
    cache.store((1, 2, "t"), 0, "b")
    cache.store((1, 3, "t"), 0, "c")
    assert len(cache) == 2 and cache.lookup((1, 1, "t"), 3) is None
    cache.evict((1, 3, "t"))
    assert cache.lookup((1, 3, "t"), 0) is None
