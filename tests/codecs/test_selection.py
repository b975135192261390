"""Tests for the largest-value selection helpers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.codecs.selection import MIN_GROUP, kth_largest, largest_positions


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4096), st.data(), st.sampled_from(["normal", "ties", "zeros"]))
def test_kth_largest_of_one_row_matches_a_sort(n, data, kind):
    """Pruning by group maxima (long rows, small k) never changes the answer."""
    k = data.draw(st.integers(1, n) | st.integers(1, max(1, n // 64)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    values = rng.standard_normal(n).astype(np.float32)
    if kind == "ties":
        values = np.round(values * 2).astype(np.float32)
    elif kind == "zeros":
        values = np.where(rng.random(n) < 0.9, 0, np.abs(values)).astype(np.float32)
    expected = np.sort(values)[::-1][k - 1]
    assert kth_largest(values[None, :], k)[0, 0] == expected


@pytest.mark.parametrize("n", [MIN_GROUP * 100, 16384, 20480])
def test_kth_largest_of_constant_rows_and_of_several_rows(n):
    k = n // 100
    assert kth_largest(np.full((1, n), 1.5, np.float32), k)[0, 0] == 1.5
    rows = np.random.default_rng(0).random((3, n)).astype(np.float32)
    expected = np.sort(rows, axis=1)[:, ::-1][:, k - 1 : k]
    np.testing.assert_array_equal(kth_largest(rows, k), expected)


def test_largest_positions_break_ties_toward_lower_positions():
    values = np.array([1.0, 3.0, 2.0, 2.0, 0.0, 2.0], np.float32)
    assert largest_positions(values, 3).tolist() == [1, 2, 3]
