"""Every sampler uses each sample once per epoch; batch sizes and step counts (checks 1-3, 6)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.sampling import get_sampler, plan_offsets

SPECS = ["ugs", "lds", "lds:c=1e9", "lds:c=0.001", "lds:c=1.0,delta=2.0", "fpls", "fls"]


@pytest.mark.parametrize("spec", ["ugs", "lds:c=1.0,delta=0", "fls", "fpls"])
def test_public_entry_point_returns_an_int_schedule(spec):
    plan = get_sampler(spec).plan(np.array([30, 0, 12, 50]), 16, seed=3)
    assert isinstance(plan, np.ndarray) and plan.dtype.kind == "i" and plan.ndim == 2
    assert plan.shape[1] == 4
    assert get_sampler(spec).get_config()["id"] == spec.split(":")[0]


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 80), min_size=1, max_size=20).filter(lambda c: sum(c) > 0),
    batch=st.integers(1, 40),
    seed=st.integers(0, 2**31),
    spec=st.sampled_from(SPECS),
)
def test_each_sample_is_used_exactly_once_per_epoch(counts, batch, seed, spec):
    sampler = get_sampler(spec)
    sampler.set_delays(np.arange(len(counts), dtype=float))
    plan = sampler.plan(np.array(counts), batch, seed)
    assert (plan >= 0).all()
    assert (plan.sum(axis=0) == counts).all()
    assert (plan.sum(axis=1) > 0).all()  # no empty steps


def test_ugs_batch_sizes_follow_array_split():
    plan = get_sampler("ugs").plan(np.full(10, 5000), 128, seed=0)
    sizes = plan.sum(axis=1)
    assert len(sizes) == math.ceil(50_000 / 128) == 391
    assert (sizes == 128).sum() == 343 and (sizes == 127).sum() == 48


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 60), min_size=1, max_size=12).filter(lambda c: sum(c) > 0),
    batch=st.integers(1, 30),
)
def test_ugs_and_lds_take_ceil_n_over_b_steps_of_at_most_b(counts, batch):
    total = sum(counts)
    steps = math.ceil(total / batch)
    ugs = get_sampler("ugs").plan(np.array(counts), batch, 0).sum(axis=1)
    assert len(ugs) == steps and set(ugs) <= {total // steps, -(-total // steps)}
    lds = get_sampler("lds").plan(np.array(counts), batch, 0).sum(axis=1)
    assert len(lds) == steps and (lds[:-1] == batch).all() and 0 < lds[-1] <= batch


@pytest.mark.parametrize("clients", [4, 16, 128, 512])
def test_effective_batch_is_independent_of_the_number_of_clients(clients):
    counts = np.full(clients, 2048 // clients)
    for spec in ("ugs", "lds"):
        assert get_sampler(spec).plan(counts, 128, 0).sum(axis=1).max() <= 128
    fls = get_sampler("fls").plan(counts, 128, 0).sum(axis=1)
    if clients > 2 * 128:
        assert (fls == clients).all()


@pytest.mark.parametrize("spec", ["fpls", "fls"])
def test_fixed_local_samplers_step_count_and_depletion(spec):
    counts = np.array([5, 40, 13, 0, 90, 7])
    batch = 32
    if spec == "fpls":
        local = np.maximum(1, np.round(batch * counts / counts.sum()))
    else:
        local = np.full(counts.size, max(1, round(batch / 5)))
    plan = get_sampler(spec).plan(counts, batch, 0)
    nonzero = counts > 0
    assert len(plan) == int(np.ceil(counts[nonzero] / local[nonzero]).max())
    sizes = plan.sum(axis=1)
    assert (np.diff(sizes) <= 0).all()  # the union batch only shrinks as clients deplete
    assert len(plan) >= math.ceil(counts.sum() / batch)


def test_sampler_options_are_validated():
    with pytest.raises(ValueError, match="c must be"):
        get_sampler("lds:c=0")
    with pytest.raises(ValueError, match="bad options"):
        get_sampler("ugs:c=1")
    sampler = get_sampler("lds:delta=1.0")
    sampler.set_delays(np.ones(3))
    with pytest.raises(ValueError, match="3 delays for 2 clients"):
        sampler.plan(np.array([4, 4]), 2, 0)


def test_plan_offsets_start_each_step_after_the_samples_taken_before():
    plan = np.array([[2, 0, 1], [1, 3, 0]], dtype=np.int64)
    offsets = plan_offsets(plan)
    assert offsets.tolist() == [[0, 0, 0], [2, 0, 1], [3, 3, 1]]
