"""Planned-time model and the straggler clock (check 11)."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_split.metrics.profiles import (
    ClientProfile,
    ProfileConfig,
    SimulatedClock,
    planned_step_seconds,
    straggler_extra,
)
from flwr_split.sampling import get_sampler

COUNTS = np.array([10, 40, 80, 150, 300, 20, 60, 90])  # one class per client


def plan_deviation(plan: np.ndarray) -> float:
    """Mean L1 batch deviation of a plan when client k holds only class k."""
    shares = plan / plan.sum(axis=1, keepdims=True)
    return float(np.abs(shares - COUNTS / COUNTS.sum()).sum(axis=1).mean())


def test_without_stragglers_time_is_proportional_to_steps():
    ugs = get_sampler("ugs").plan(COUNTS, 32, 0)
    fpls = get_sampler("fpls").plan(COUNTS, 32, 0)
    for plan in (ugs, fpls):
        assert planned_step_seconds(plan, 0.0, 1.0, 0.0).sum() == len(plan)
    assert len(ugs) <= len(fpls)


def test_with_stragglers_small_c_lds_is_faster_and_deviates_more_than_ugs():
    stragglers = ProfileConfig(straggler_fraction=0.25, seed=1).stragglers(COUNTS.size)
    assert stragglers.sum() == 2

    def seconds(plan):
        extra = np.where(stragglers, 5.0, 0.0)
        return planned_step_seconds(plan, 0.01, 0.1, 0.001, lambda: extra).sum()

    ugs = [get_sampler("ugs").plan(COUNTS, 32, s) for s in range(20)]
    lds = [get_sampler("lds:c=0.01").plan(COUNTS, 32, s) for s in range(20)]
    assert np.mean([seconds(p) for p in lds]) < 0.8 * np.mean([seconds(p) for p in ugs])
    assert np.mean([plan_deviation(p) for p in lds]) > np.mean([plan_deviation(p) for p in ugs])


def test_planned_step_takes_the_slowest_active_client_plus_server_time():
    plan = np.array([[2, 0, 1], [0, 0, 0]])
    seconds = planned_step_seconds(plan, np.array([1.0, 100.0, 0.5]), 0.1, 0.01)
    assert seconds == pytest.approx([2.1 + 0.03, 0.0])


def test_clock_adds_lambda_times_the_median_exchange_to_stragglers():
    regular, slow = ClientProfile(), ClientProfile(straggler=True)
    clock = SimulatedClock(straggler_latency=5.0)
    assert clock.exchange([(regular, 0, 1.0, 0), (slow, 0, 1.0, 0)], [0, 1]) == 6.0
    assert clock.exchange([(regular, 0, 3.0, 0)], [0]) == 3.0
    assert clock.exchange([(slow, 0, 1.0, 0)], [1]) == 1.0 + 5.0 * 1.0  # median of 1, 3, 1
    assert clock.take_delays(3).tolist() == [2.0, 6.0, 4.0]  # client 2: mean of the others
    assert clock.take_delays(3) is None


def test_exponential_straggler_delays_are_seeded_with_the_right_mean():
    mask = np.array([True, False])
    draws = [
        straggler_extra(mask, 2.0, "exponential", np.random.default_rng(s)) for s in range(4000)
    ]
    assert np.mean([d[0] for d in draws]) == pytest.approx(2.0, rel=0.1)
    assert all(d[1] == 0.0 for d in draws)
    config = ProfileConfig(
        straggler_fraction=0.5, straggler_latency=5, straggler_delay="exponential"
    )
    profiles = config.assign(4)
    assert sum(p.straggler for p in profiles) == 2
    times = [
        [config.clock().exchange([(p, 0, 1.0, 0) for p in profiles]) for _ in range(3)]
        for _ in range(2)
    ]
    assert times[0] == times[1]


def test_default_profiles_keep_the_old_behaviour():
    profiles = ProfileConfig(straggler_fraction=0.5).assign(4)
    clock = ProfileConfig().clock()
    assert clock.exchange([(p, 0, 1.0, 0) for p in profiles]) == 10.0  # slowdown only
    with pytest.raises(ValueError, match="straggler_delay"):
        ProfileConfig(straggler_delay="gamma")
