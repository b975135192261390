"""Tests for the largest-value selection helpers."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.codecs.blocks import BLOCK
from flwr_split.codecs.selection import (
    MIN_GROUP,
    finite_flat_maxima,
    group_size,
    kth_largest,
    largest_positions,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 70_000), st.data(), st.sampled_from(["normal", "ties", "zeros"]))
def test_pruned_selection_matches_a_stable_sort(n, data, kind):
    """Pruning by group maxima (long rows, small k) never changes the kept positions."""
    k = data.draw(st.integers(0, n) | st.integers(1, max(1, n // 64)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    values = rng.standard_normal(n).astype(np.float32)
    if kind == "ties":
        values = np.round(values * 2).astype(np.float32)
    elif kind == "zeros":
        values = np.where(rng.random(n) < 0.9, 0, np.abs(values)).astype(np.float32)
    _, lowest, highest, maxima = finite_flat_maxima(torch.from_numpy(values), k)
    assert (lowest, highest) == (values.min(), values.max())
    magnitudes = np.abs(values) if lowest < 0 else values  # as topk and ms select
    expected = np.sort(np.argsort(-magnitudes, kind="stable")[:k])
    assert largest_positions(magnitudes, k, maxima).tolist() == expected.tolist()


def test_group_maxima_bound_every_group():
    values = np.random.default_rng(1).standard_normal(3 * BLOCK + 100).astype(np.float32)
    k = values.size // 100
    group = group_size(values.size, k)
    maxima = finite_flat_maxima(torch.from_numpy(values), k)[3]
    assert group == 64 and maxima.size >= k
    # the maxima are distinct entries' magnitudes and cover every entry's group
    assert np.isin(maxima, np.abs(values)).all()
    assert maxima.max() == np.abs(values).max()


def test_kth_largest_of_one_row_matches_a_sort():
    values = np.random.default_rng(2).standard_normal(5000).astype(np.float32)
    assert kth_largest(values[None, :], 50)[0, 0] == np.sort(values)[-50]


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
