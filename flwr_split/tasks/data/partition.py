"""Split a labelled data set over clients: IID, Dirichlet over labels, extended Dirichlet."""

from __future__ import annotations

import numpy as np

PARTITION_SCHEMES = ("iid", "dirichlet", "extended-dirichlet")


def partition_indices(
    labels: np.ndarray,
    num_partitions: int,
    scheme: str = "iid",
    alpha: float = 0.5,
    seed: int = 0,
    min_partition_size: int = 1,
    classes_per_client: int = 2,
) -> list[np.ndarray]:
    """Assign sample indices to ``num_partitions`` clients.

    ``"iid"`` cuts a seeded permutation into contiguous shards in NumPy: the
    split flwr-datasets' `IidPartitioner` makes of that order (a test checks
    it), without importing flwr-datasets in a client process that loads its
    partition at every message. The others use flwr-datasets partitioners
    (`make_partitioner`) on a local Hugging Face ``Dataset`` that holds only
    the labels and the sample index, so no data leaves memory.

    Parameters
    ----------
    labels : np.ndarray
        Integer labels, one per sample.
    num_partitions : int
        Number of clients.
    scheme : str (default: "iid")
        ``"iid"`` (uniform random, equal sizes), ``"dirichlet"`` (label
        proportions per client drawn from Dirichlet(``alpha``)) or
        ``"extended-dirichlet"`` (at most ``classes_per_client`` classes per
        client, see `extended_dirichlet_indices`; clients may be empty).
    alpha : float (default: 0.5)
        Dirichlet concentration; smaller is more heterogeneous.
    seed : int (default: 0)
        Seed of the partitioner.
    min_partition_size : int (default: 1)
        Dirichlet only: redraw until every client holds at least this many samples.
    classes_per_client : int (default: 2)
        Extended Dirichlet only: classes per client.

    Returns
    -------
    list[np.ndarray]
        For each partition id, the sorted int64 indices of its samples.
    """
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, got {num_partitions}")
    if scheme not in PARTITION_SCHEMES:
        raise ValueError(f"unknown partition scheme {scheme!r}; choose from {PARTITION_SCHEMES}")
    labels = np.asarray(labels, dtype=np.int64)
    if num_partitions > len(labels):
        raise ValueError(f"{num_partitions} partitions for only {len(labels)} samples")
    if scheme == "iid":
        order = np.random.default_rng(seed).permutation(len(labels))
        return [np.sort(shard) for shard in np.array_split(order, num_partitions)]
    from datasets import Dataset

    from flwr_split.tasks.data.partitioners import make_partitioner

    partitioner = make_partitioner(
        scheme,
        num_partitions,
        alpha=alpha,
        seed=seed,
        classes_per_client=classes_per_client,
        min_partition_size=min_partition_size,
    )
    partitioner.dataset = Dataset.from_dict({"label": labels, "index": np.arange(len(labels))})
    try:
        return [
            np.sort(np.asarray(partitioner.load_partition(pid)["index"], dtype=np.int64))
            for pid in range(num_partitions)
        ]
    except ValueError as exc:
        if scheme != "dirichlet":
            raise
        raise ValueError(
            f"cannot split {len(labels)} samples into {num_partitions} Dirichlet(alpha={alpha}) "
            f"partitions of at least {min_partition_size} samples: {exc}"
        ) from exc


NATURAL = "natural"
"""Partitioner name for a task's natural groups (e.g. speaking roles), see `group_partition`."""


def group_partition(groups: np.ndarray, num_partitions: int, seed: int = 0) -> list[np.ndarray]:
    """Assign whole groups of samples (e.g. speaking roles) to ``num_partitions`` clients.

    Groups are shuffled with ``seed``, ordered by size (largest first, stable),
    and each goes to the client that holds the fewest samples so far (lowest
    id on ties), so clients are about equally large and never share a group.

    Parameters
    ----------
    groups : np.ndarray
        Integer group id of every sample.
    num_partitions : int
        Number of clients, at most the number of distinct groups.
    seed : int (default: 0)
        Seed of the shuffle that breaks ties between groups of equal size.

    Returns
    -------
    list[np.ndarray]
        For each partition id, the sorted int64 indices of its samples.
    """
    ids, sizes = np.unique(np.asarray(groups, dtype=np.int64), return_counts=True)
    if not 1 <= num_partitions <= len(ids):
        raise ValueError(f"cannot give {num_partitions} clients whole groups of {len(ids)} groups")
    shuffled = np.random.default_rng(seed).permutation(len(ids))
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    load = np.zeros(num_partitions, dtype=np.int64)
    owner = np.empty(len(ids), dtype=np.int64)
    for group in order:
        owner[group] = int(np.argmin(load))
        load[owner[group]] += sizes[group]
    sample_owner = owner[np.searchsorted(ids, groups)]
    return [np.flatnonzero(sample_owner == pid) for pid in range(num_partitions)]
