"""The fixed local-batch sampler uses every sample once per epoch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.sampling import get_sampler


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 60), min_size=1, max_size=12).filter(lambda c: sum(c) > 0),
    batch=st.integers(1, 20),
)
def test_fixed_plan_uses_each_sample_once_with_at_most_batch_per_step(counts, batch):
    plan = get_sampler("fixed").plan(np.array(counts), batch, seed=0)
    assert plan.dtype.kind == "i"
    assert plan.shape == (-(-max(counts) // batch), len(counts))
    assert (plan.sum(axis=0) == counts).all()
    assert ((plan >= 0) & (plan <= batch)).all()


def test_unknown_sampler_and_bad_counts_are_clear_errors():
    with pytest.raises(ValueError, match="unknown sampler 'ugz'"):
        get_sampler("ugz")
    with pytest.raises(ValueError, match="non-empty 1-D integer"):
        get_sampler("fixed").plan(np.array([1.5]), 4, 0)


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 40), min_size=1, max_size=15).filter(lambda c: sum(c) > 0),
    batch=st.integers(1, 10),
    per_step=st.integers(1, 6),
    seed=st.integers(0, 2**31),
)
def test_partial_participation_uses_each_sample_once_with_at_most_c_clients_per_step(
    counts, batch, per_step, seed
):
    sampler = get_sampler(f"fixed:clients={per_step}")
    plan = sampler.plan(np.array(counts), batch, seed=seed)
    assert (plan.sum(axis=0) == counts).all()
    assert ((plan > 0).sum(axis=1) <= per_step).all()
    assert (plan <= batch).all()
    assert np.array_equal(plan, sampler.plan(np.array(counts), batch, seed=seed))


def test_partial_participation_rejects_a_negative_count():
    with pytest.raises(ValueError, match="clients must be an int >= 0"):
        get_sampler("fixed:clients=-2")
