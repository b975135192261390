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
