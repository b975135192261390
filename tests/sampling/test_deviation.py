"""Batch deviation is an L1 distance in [0, 2] (check 5)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flwr_split.sampling import batch_deviation, class_shares


def test_deviation_is_zero_for_the_pooled_mix_and_two_for_disjoint_supports():
    pooled = np.array([0.5, 0.5, 0.0])
    assert batch_deviation(class_shares(np.array([0, 1]), 3), pooled)["l1"] == 0.0
    disjoint = batch_deviation(class_shares(np.array([2, 2]), 3), pooled)
    assert disjoint == pytest.approx({"l1": 2.0, "l2": np.sqrt(1.5), "max": 1.0})


def test_deviation_matches_a_hand_computed_case():
    pooled = np.array([0.1] * 10)
    batch = class_shares(np.array([0, 0, 0, 1]), 10)  # 0.75, 0.25, 0 x 8
    assert batch_deviation(batch, pooled)["l1"] == pytest.approx(0.65 + 0.15 + 0.8)


@given(st.lists(st.integers(0, 9), min_size=1, max_size=50), st.integers(0, 2**31))
def test_deviation_stays_in_zero_two(labels, seed):
    pooled = np.random.default_rng(seed).dirichlet(np.ones(10))
    value = batch_deviation(class_shares(np.array(labels), 10), pooled)["l1"]
    assert 0.0 <= value <= 2.0 + 1e-12
