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


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(0, 60), min_size=1, max_size=12),
    batch=st.integers(1, 20),
    per_step=st.integers(0, 6),
    seed=st.integers(0, 2**31),
)
def test_drop_last_sends_only_full_batches_and_skips_less_than_one_per_client(
    counts, batch, per_step, seed
):
    counts = np.array(counts)
    sampler = get_sampler(f"fixed:clients={per_step},drop_last=true")
    if (counts < batch).all():
        with pytest.raises(ValueError, match="no client holds a full batch of"):
            sampler.plan(counts, batch, seed=seed)
        return
    plan = sampler.plan(counts, batch, seed=seed)
    assert set(np.unique(plan)) <= {0, batch}
    assert (plan.sum(axis=0) == counts - counts % batch).all()
    assert (plan.sum(axis=1) > 0).all()  # no empty steps
    assert sampler.get_config() == {"id": "fixed", "clients": per_step, "drop_last": True}


def test_drop_last_must_be_a_boolean():
    with pytest.raises(ValueError, match="drop_last must be true or false"):
        get_sampler("fixed:drop_last=2")
