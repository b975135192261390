"""Extended Dirichlet partition: every sample once, at most C classes per client (check 12)."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_split.tasks import TaskConfig, client_data, load_task_data
from flwr_split.tasks.data.partition import partition_indices


@pytest.mark.parametrize(("clients", "classes"), [(16, 2), (128, 2), (32, 5)])
def test_extended_dirichlet_covers_every_sample_once_with_at_most_c_classes(clients, classes):
    labels = load_task_data(TaskConfig(task="mnist1d"))[0].y
    parts = partition_indices(
        labels, clients, "extended-dirichlet", 3.0, 4, classes_per_client=classes
    )
    joined = np.concatenate(parts)
    assert len(parts) == clients
    assert len(joined) == len(labels) == len(np.unique(joined))
    for part in parts:
        assert len(np.unique(labels[part])) <= classes


def test_class_choice_is_balanced_over_clients():
    labels = np.repeat(np.arange(10), 50)
    parts = partition_indices(labels, 20, "extended-dirichlet", 3.0, 0, classes_per_client=2)
    holders = np.zeros(10)
    for part in parts:
        holders[np.unique(labels[part])] += 1
    assert holders.max() - holders.min() <= 2  # 40 choices over 10 classes, about 4 each


def test_extended_dirichlet_is_deterministic_per_seed_and_reaches_clients_via_task_config():
    labels = load_task_data(TaskConfig())[0].y
    first = partition_indices(labels, 8, "extended-dirichlet", 3.0, 1, classes_per_client=2)
    again = partition_indices(labels, 8, "extended-dirichlet", 3.0, 1, classes_per_client=2)
    other = partition_indices(labels, 8, "extended-dirichlet", 3.0, 2, classes_per_client=2)
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(first, other, strict=True))
    task = TaskConfig(
        partitioner="extended-dirichlet", classes_per_client=2, dirichlet_alpha=3.0, seed=1
    )
    train, _ = client_data(task, 3, 8)
    assert len(np.unique(train.y)) <= 2
    with pytest.raises(ValueError, match="classes_per_client"):
        partition_indices(labels, 8, "extended-dirichlet", 3.0, 1, classes_per_client=11)
