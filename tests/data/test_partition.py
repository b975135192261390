"""Partitions cover every sample exactly once; Dirichlet skews the label mix."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_split.tasks import TaskConfig, client_data, load_task_data
from flwr_split.tasks.data.partition import partition_indices


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_partitions_are_disjoint_and_cover_the_data(scheme):
    labels = load_task_data(TaskConfig())[0].y
    parts = partition_indices(labels, 10, scheme, alpha=0.5, seed=1)
    joined = np.concatenate(parts)
    assert len(joined) == len(labels) == len(np.unique(joined))


def test_iid_sizes_are_balanced_and_dirichlet_label_mix_is_skewed():
    labels = load_task_data(TaskConfig())[0].y
    iid = partition_indices(labels, 10, "iid", seed=0)
    assert max(map(len, iid)) - min(map(len, iid)) <= 1
    skewed = partition_indices(labels, 10, "dirichlet", alpha=0.1, seed=0)
    share = [np.bincount(labels[p], minlength=10).max() / len(p) for p in skewed]
    assert np.mean(share) > 0.5  # IID would give about 0.1


def test_partitions_are_reproducible_from_the_seed():
    labels = load_task_data(TaskConfig())[0].y
    a = partition_indices(labels, 5, "dirichlet", seed=4)
    b = partition_indices(labels, 5, "dirichlet", seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_impossible_dirichlet_split_names_the_problem():
    labels = np.repeat(np.arange(10), 3)
    with pytest.raises(ValueError, match="cannot split 30 samples into 25"):
        partition_indices(labels, 25, "dirichlet", alpha=0.1, min_partition_size=2)


def test_client_data_shards_the_test_set_iid():
    config = TaskConfig()
    tests = [client_data(config, k, 4)[1] for k in range(4)]
    assert sum(len(t) for t in tests) == len(load_task_data(config)[1])


@pytest.mark.parametrize(("num_samples", "num_partitions"), [(1437, 10), (30, 7), (5, 5)])
def test_iid_equals_flwr_datasets_iid_partitioner_on_the_same_order(num_samples, num_partitions):
    from datasets import Dataset
    from flwr_datasets.partitioner import IidPartitioner

    labels = np.arange(num_samples) % 10
    order = np.random.default_rng(3).permutation(num_samples)
    partitioner = IidPartitioner(num_partitions=num_partitions)
    partitioner.dataset = Dataset.from_dict({"index": order})
    expected = [np.sort(partitioner.load_partition(k)["index"]) for k in range(num_partitions)]
    got = partition_indices(labels, num_partitions, "iid", seed=3)
    assert [p.tolist() for p in got] == [list(e) for e in expected]
