"""Client profiles and the simulated clock."""

from __future__ import annotations

import pytest

from flwr_split.metrics.profiles import MBPS, ClientProfile, ProfileConfig, SimulatedClock
from tests.helpers import run_inprocess


def test_clock_arithmetic_on_a_hand_computed_case():
    fast = ClientProfile(compute_factor=1.0, uplink_mbps=8.0, downlink_mbps=16.0, latency_s=0.01)
    slow = ClientProfile(compute_factor=10.0, uplink_mbps=0.8, downlink_mbps=1.6, latency_s=0.01)
    # fast: 0.02 + 2e6/(16*125000) + 0.1 + 1e6/(8*125000) = 0.02 + 1 + 0.1 + 1 = 2.12
    # slow: 0.02 + 10 + 1.0 + 10 = 21.02
    clock = SimulatedClock()
    assert clock.exchange([(fast, 2_000_000, 0.1, 1_000_000)]) == pytest.approx(2.12)
    assert clock.exchange(
        [(fast, 2_000_000, 0.1, 1_000_000), (slow, 2_000_000, 0.1, 1_000_000)]
    ) == (pytest.approx(21.02))
    clock.server(0.5)
    assert clock.seconds == pytest.approx(2.12 + 21.02 + 0.5)
    assert MBPS == 125_000


def test_straggler_assignment_is_seeded_and_exact():
    config = ProfileConfig(straggler_fraction=0.2, straggler_slowdown=10.0, seed=3)
    profiles = config.assign(50)
    slow = [k for k, p in enumerate(profiles) if p.compute_factor == 10.0]
    assert len(slow) == 10 and slow == [
        k for k, p in enumerate(config.assign(50)) if p.compute_factor == 10.0
    ]
    assert all(profiles[k].uplink_mbps == 1.0 and profiles[k].downlink_mbps == 5.0 for k in slow)
    with pytest.raises(ValueError):
        ProfileConfig(straggler_fraction=1.5)


def test_stragglers_stretch_simulated_time_as_the_model_predicts():
    # Links so slow that transfers dominate: a 10x slower straggler link makes steps ~10x longer.
    slow_links = {"uplink_mbps": 0.1, "downlink_mbps": 0.1}
    base, result_base, _ = run_inprocess(5, max_steps=4, profiles=ProfileConfig(**slow_links))
    strag, result_strag, _ = run_inprocess(
        5, max_steps=4, profiles=ProfileConfig(**slow_links, straggler_fraction=0.2, seed=1)
    )
    t_base, t_strag = base.clock.seconds, strag.clock.seconds
    assert t_base > 10  # 64 KB each way per client per step at 0.1 Mbit/s
    assert 9.0 < t_strag / t_base < 10.5
    assert result_strag.history["sim_time_s"].iloc[-1] == pytest.approx(t_strag)
    assert result_base.history["wall_s"].iloc[-1] < t_base
