"""Batched k-means of the FedLite codec: pinned outputs and the distinct-point initialization."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.codecs import kmeans
from flwr_split.codecs.kmeans import _all_distinct, fit_kmeans, init_random
from tests.helpers import digest


def _points(kind: str, groups: int, count: int, width: int, seed: int) -> torch.Tensor:
    """Seeded point sets: Gaussian, ReLU'd, coarse (few values) or binary (mostly zeros)."""
    x = torch.randn(groups, count, width, generator=torch.Generator().manual_seed(seed))
    if kind == "relu":
        return x.relu()
    if kind == "coarse":
        return (x.relu() * 2).round() / 2
    if kind == "binary":
        return (x > 0.8).float()
    return x


# (kind, G, N, p, L, iters, init) -> SHA-256 prefix of (codebooks, codes) bytes for seeds 0 and 1,
# produced by the implementation before the encode speed-up (commit d084e7b) on x86-64,
# torch 2.13 CPU. "binary" with p <= 3 has fewer distinct points than L (the repeat-last path);
# N < L takes all points; "coarse" and "relu" start with repeated candidates.
PINNED = {
    ("normal", 1, 1280, 64, 2, 10, "random"): ("3aa5f462df66d7c2", "400de4d9f2eb5a68"),
    ("relu", 2, 2048, 8, 4, 10, "random"): ("3f8a5b87833498de", "24ec6a9f03c16309"),
    ("coarse", 3, 500, 4, 32, 5, "random"): ("9315c80f72bff603", "36a7751fd917951f"),
    ("binary", 2, 300, 3, 16, 10, "random"): ("562f80476bb9ec4e", "d3beb6643b0bcb34"),
    ("relu", 4, 640, 16, 16, 3, "random"): ("0d535838e755d24c", "9691dbf64b9a1ccf"),
    ("coarse", 1, 400, 2, 8, 10, "kmeans++"): ("f7f550dda30fd528", "a78f9ecaa94c75e9"),
    ("binary", 1, 50, 2, 64, 10, "random"): ("320aec2f512f2854", "1bd7ba62b1c27e5a"),
}


@pytest.mark.parametrize(("case", "digests"), list(PINNED.items()), ids=str)
def test_kmeans_outputs_are_bit_identical_to_the_pinned_reference(case, digests):
    kind, groups, count, width, clusters, iters, init = case
    for seed, pinned in enumerate(digests):
        points = _points(kind, groups, count, width, seed)
        generator = torch.Generator().manual_seed(seed + 10)
        books, codes = fit_kmeans(points, clusters, iters, generator, init)
        assert digest(books.numpy(), codes.numpy()) == pinned


@pytest.mark.parametrize(("kind", "width", "clusters"), [("coarse", 2, 8), ("binary", 3, 16)])
def test_kmeans_random_init_takes_the_first_distinct_points_of_the_seeded_order(
    kind, width, clusters
):
    points = _points(kind, 3, 400, width, seed=5)
    books = init_random(points, clusters, torch.Generator().manual_seed(7))
    generator = torch.Generator().manual_seed(7)
    for group, book in zip(points, books, strict=True):
        order = torch.randperm(group.shape[0], generator=generator)
        distinct: list[tuple[float, ...]] = []
        for row in group[order].tolist():
            if tuple(row) not in distinct and len(distinct) < clusters:
                distinct.append(tuple(row))
        expected = distinct + distinct[-1:] * (clusters - len(distinct))
        assert book.tolist() == [list(row) for row in expected]


@settings(max_examples=200, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 5)),
    values=st.lists(st.sampled_from([0.0, -0.0, 1.0, -1.5, 2.0**-140, 3e38]), min_size=180),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_distinct_codeword_check_agrees_with_comparing_every_pair(shape, values, dtype):
    groups, clusters, width = shape
    books = torch.tensor(values[: groups * clusters * width], dtype=dtype).reshape(shape)
    pairs = (books.unsqueeze(2) == books.unsqueeze(1)).all(dim=3)
    assert _all_distinct(books) == (int(pairs.sum()) == groups * clusters)


@pytest.mark.parametrize("block", [kmeans.UPDATE_BLOCK, 40])
def test_update_sums_each_cluster_in_point_order_like_index_add(monkeypatch, block):
    """The scatter-based update equals adding residuals point by point (``index_add_``)."""
    monkeypatch.setattr(kmeans, "UPDATE_BLOCK", block)  # 40 values: several blocks of points
    points = _points("coarse", 3, 200, 8, seed=4).reshape(-1, 8)
    books = _points("normal", 3, 5, 8, seed=5).reshape(-1, 8)
    books[2] = points[0]  # a codeword equal to points: zero residuals, negative zeros
    rows = torch.randint(15, (600,), generator=torch.Generator().manual_seed(6))
    sums = torch.zeros_like(books).index_add_(0, rows, points - books[rows])
    counts = torch.bincount(rows, minlength=15).clamp_min(1).unsqueeze(1)
    expected = sums / counts + books
    assert torch.equal(kmeans._update_rows(points, books, rows), expected)
