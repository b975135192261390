"""LDS calibration and straggler tilt (reconstruction; checks 9 and 10)."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_split.sampling import get_sampler
from flwr_split.sampling.lds import largest_remainder, repair_capacity

COUNTS = np.array([50, 150, 200])
BATCH = 200


def first_rows(spec: str, epochs: int, delays: np.ndarray | None = None) -> np.ndarray:
    sampler = get_sampler(spec)
    sampler.set_delays(delays)
    return np.array([sampler.plan(COUNTS, BATCH, seed)[0] for seed in range(epochs)])


def test_lds_with_c_one_matches_the_ugs_share_mean_and_variance():
    shares = first_rows("lds:c=1.0,delta=0", 20_000) / BATCH
    total = COUNTS.sum()
    r = COUNTS / total
    assert np.abs(shares.mean(axis=0) - r).max() < 0.005
    ugs_variance = r * (1 - r) * (total - BATCH) / (BATCH * (total - 1))
    assert np.allclose(shares.var(axis=0), ugs_variance, rtol=0.05)


def test_lds_with_huge_c_is_the_deterministic_proportional_allocation():
    counts = np.array([33, 101, 266])  # b * R_k / R has fractional parts far from ties
    plan = get_sampler("lds:c=1e9").plan(counts, BATCH, seed=7)
    assert (plan[0] == largest_remainder(BATCH, counts / counts.sum())).all()
    remaining = counts.copy()
    for row in plan[:-1]:  # later steps may hit near-ties of the rounding: within one sample
        assert np.abs(row - BATCH * remaining / remaining.sum()).max() < 1
        remaining -= row


def test_lds_with_tiny_c_takes_each_batch_from_almost_one_client():
    plans = [get_sampler("lds:c=0.001").plan(COUNTS * 5, BATCH, seed) for seed in range(50)]
    top_share = np.concatenate([(p.max(axis=1) / p.sum(axis=1))[:-1] for p in plans])
    assert np.median(top_share) > 0.9


def test_capacity_repair_keeps_the_total_and_the_limits():
    counts = repair_capacity(np.array([7, 1, 2]), np.array([3, 5, 5]), np.array([0.7, 0.1, 0.2]))
    assert counts.sum() == 10 and (counts <= [3, 5, 5]).all()
    assert counts.tolist() == [3, 2, 5]  # excess to the largest share with room: 2 then 1


def test_straggler_tilt_front_loads_the_slow_client():
    delays = np.array([1.0, 1.0, 1.0, 1.0, 2.0])  # z = -0.5 for the regular clients, 2 for the slow
    delta = 0.5
    plain, tilted = get_sampler("lds"), get_sampler(f"lds:delta={delta}")
    tilted.set_delays(delays)
    plain.set_delays(delays)  # delta = 0: no tilt whatever the delays

    def first_step_mean(sampler):
        return np.mean([sampler.plan(np.full(5, 60), 100, s)[0] for s in range(3000)], axis=0)

    early_plain, early_tilted = first_step_mean(plain), first_step_mean(tilted)
    assert early_plain[4] / early_plain[:4].mean() == pytest.approx(1.0, abs=0.05)
    ratio = early_tilted[4] / early_tilted[:4].mean()
    assert ratio == pytest.approx(np.exp(delta * (2 - -0.5)), rel=0.1)

    def last_step(sampler, seed):
        return np.flatnonzero(sampler.plan(np.full(5, 200), 20, seed)[:, 4])[-1]

    assert np.mean([last_step(tilted, s) for s in range(100)]) < np.mean(
        [last_step(plain, s) for s in range(100)]
    )
