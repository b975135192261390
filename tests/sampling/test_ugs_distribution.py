"""UGS batches are uniform draws without replacement (checks 4 and 8)."""

from __future__ import annotations

import itertools
from math import comb

import numpy as np
from scipy import stats

from flwr_split.sampling import get_sampler

COUNTS = np.array([3, 5, 12])
BATCH = 4
EPOCHS = 20_000


def first_steps() -> np.ndarray:
    sampler = get_sampler("ugs")
    return np.array([sampler.plan(COUNTS, BATCH, seed)[0] for seed in range(EPOCHS)])


def test_ugs_first_step_is_multivariate_hypergeometric():
    draws = first_steps()
    total = COUNTS.sum()
    b = draws.sum(axis=1)[0]
    share = COUNTS / total
    se = np.sqrt(b * share * (1 - share) * (total - b) / (total - 1) / EPOCHS)
    assert (np.abs(draws.mean(axis=0) - b * share) < 3 * se).all()
    outcomes = [o for o in itertools.product(*(range(c + 1) for c in COUNTS)) if sum(o) == b]
    expected = np.array(
        [np.prod([comb(c, o) for c, o in zip(COUNTS, x, strict=True)]) for x in outcomes]
    )
    expected = expected / comb(total, b) * EPOCHS
    index = {o: i for i, o in enumerate(outcomes)}
    observed = np.zeros(len(outcomes))
    for row in draws:
        observed[index[tuple(row)]] += 1
    assert stats.chisquare(observed, expected).pvalue > 0.01


def test_ugs_class_counts_have_hypergeometric_mean_and_variance():
    # client 0 holds class 0 only, clients 1 and 2 hold class 1: the class-0 count is client 0's
    draws = first_steps()[:, 0]
    total, b, p = COUNTS.sum(), BATCH, COUNTS[0] / COUNTS.sum()
    variance = b * p * (1 - p) * (total - b) / (total - 1)
    assert abs(draws.mean() - b * p) < 3 * np.sqrt(variance / EPOCHS)
    assert abs(draws.var() - variance) < 0.05 * variance


def test_serfling_bound_holds_empirically():
    labels = np.repeat(np.arange(10), 100)  # N = 1000, C = 10, one class per client
    counts = np.bincount(labels)
    total, classes = 1000, 10
    shares = np.vstack([get_sampler("ugs").plan(counts, 64, seed) for seed in range(300)])
    b = int(shares.sum(axis=1).min())  # 62 or 63: array_split-style chunks of 1000 into 16
    shares = shares / shares.sum(axis=1, keepdims=True)
    deviations = np.abs(shares - counts / total).max(axis=1)
    for eps in (0.1, 0.15, 0.2):
        bound = 2 * classes * np.exp(-2 * b * eps**2 / (1 - (b - 1) / total))
        assert (deviations >= eps).mean() <= bound
    assert np.abs(shares.mean(axis=0) - counts / total).max() < 0.005
