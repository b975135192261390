"""Tests for the largest-value selection helpers."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.codecs.selection import (
    SAMPLED,
    Candidates,
    finite_flat_candidates,
    kth_largest,
    largest_positions,
    sampled_bound,
)

LONG = 4 * SAMPLED
"""The shortest row that `finite_flat_candidates` prunes by a sampled bound."""


def _values(n: int, kind: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(n).astype(np.float32)
    if kind == "ties":
        values = np.round(values * 2).astype(np.float32)
    elif kind == "zeros":
        values = np.where(rng.random(n) < 0.9, 0, np.abs(values)).astype(np.float32)
    elif kind == "ramp":  # the strided sample sees only the smallest values of each period
        values = np.resize(np.arange(n // SAMPLED, dtype=np.float32), n)
    return values


def _expected(values: np.ndarray, k: int, absolute: bool) -> list[int]:
    magnitudes = np.abs(values) if absolute else values
    return np.sort(np.argsort(-magnitudes, kind="stable")[:k]).tolist()


@settings(max_examples=30, deadline=None)
@given(
    st.integers(LONG, LONG + 3000),
    st.data(),
    st.sampled_from(["normal", "ties", "zeros", "ramp"]),
)
def test_pruned_selection_matches_a_stable_sort(n, data, kind):
    """Searching only the candidates above a sampled bound never changes the kept positions."""
    k = data.draw(st.integers(0, n) | st.integers(1, n // 8) | st.integers(1, n // 1000))
    values = _values(n, kind, data.draw(st.integers(0, 2**32 - 1)))
    _, lowest, highest, candidates = finite_flat_candidates(torch.from_numpy(values), k)
    assert (lowest, highest) == (values.min(), values.max())
    if candidates is not None:
        assert candidates.positions.size >= k and np.all(np.diff(candidates.positions) > 0)
        assert np.array_equal(candidates.values, values[candidates.positions])
    kept = largest_positions(values, k, candidates, absolute=lowest < 0)
    assert kept.tolist() == _expected(values, k, lowest < 0)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.data(), st.sampled_from(["normal", "ties", "zeros"]))
def test_short_rows_are_searched_whole(n, data, kind):
    k = data.draw(st.integers(0, n))
    values = _values(n, kind, data.draw(st.integers(0, 2**32 - 1)))
    assert finite_flat_candidates(torch.from_numpy(values), k)[3] is None
    assert largest_positions(values, k, absolute=True).tolist() == _expected(values, k, True)


def test_sampled_bound_leaves_a_margin_above_k():
    values = _values(3 * LONG + 100, "normal", 1)
    k = values.size // 100
    bound = sampled_bound(values, k)
    reached = int(np.count_nonzero(np.abs(values) >= bound))
    assert k < reached < 1.5 * k
    assert finite_flat_candidates(torch.from_numpy(values), k)[3].positions.size == reached


def test_a_misleading_sample_falls_back_to_the_whole_row():
    values = _values(LONG, "ramp", 0)  # every sampled entry is 0: the bound is 0, all reach it
    assert sampled_bound(values, 100) == 0
    values[:] = 0  # only the sampled entries are positive: fewer than k reach the bound
    values[:: values.size // SAMPLED] = np.arange(1, SAMPLED + 1)
    k = 1000
    assert sampled_bound(values, k) > 0
    assert finite_flat_candidates(torch.from_numpy(values), k)[3] is None
    assert largest_positions(values, k).tolist() == _expected(values, k, False)


@pytest.mark.parametrize("k", [1, 50, 2500, 2501, 4999, 5000])
def test_kth_largest_of_one_row_matches_a_sort(k):
    values = np.random.default_rng(2).standard_normal(5000).astype(np.float32)
    assert kth_largest(values[None, :], k)[0, 0] == np.sort(values)[-k]


@pytest.mark.parametrize("n", [800, 16384, 20480])
def test_kth_largest_of_constant_rows_and_of_several_rows(n):
    k = n // 100
    assert kth_largest(np.full((1, n), 1.5, np.float32), k)[0, 0] == 1.5
    rows = np.random.default_rng(0).random((3, n)).astype(np.float32)
    expected = np.sort(rows, axis=1)[:, ::-1][:, k - 1 : k]
    np.testing.assert_array_equal(kth_largest(rows, k), expected)


def test_largest_positions_break_ties_toward_lower_positions():
    values = np.array([1.0, 3.0, 2.0, 2.0, 0.0, 2.0], np.float32)
    assert largest_positions(values, 3).tolist() == [1, 2, 3]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 1e-40, 3e38, -3e38]), min_size=1)
    | st.lists(st.floats(width=32, allow_nan=False), min_size=1),
    st.data(),
)
def test_candidate_keys_keep_what_the_whole_row_search_keeps(items, data):
    """Candidates (all positions) take the 64-bit key path; the row search does not: same result."""
    values = np.array(items, np.float32)
    k = data.draw(st.integers(1, values.size), label="k")
    absolute = data.draw(st.booleans(), label="absolute")
    everything = Candidates(np.arange(values.size), values)
    expected = largest_positions(values, k, absolute=absolute)
    np.testing.assert_array_equal(largest_positions(values, k, everything, absolute), expected)


def test_a_highest_value_below_the_bound_is_found_by_a_pass_of_its_own():
    """The candidates give the highest value only when one of them reaches the bound."""
    values = -np.abs(_values(LONG, "normal", 2))
    values[5] = np.float32(1e-3)  # the highest value, far below the bound on magnitudes
    _, lowest, highest, candidates = finite_flat_candidates(torch.from_numpy(values), LONG // 100)
    assert candidates is not None and np.all(candidates.values < 0)
    assert (lowest, highest) == (values.min(), np.float32(1e-3))
