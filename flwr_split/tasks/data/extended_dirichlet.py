"""Extended Dirichlet label split: each client holds at most C classes (arXiv 2302.01633).

flwr-datasets has no partitioner for it: its ``PathologicalPartitioner`` also
gives each client C classes, but chooses them uniformly and splits a class's
samples evenly among its holders, while this scheme balances the class choice
and draws Dirichlet(alpha) shares of every class among its holders.
"""

from __future__ import annotations

import numpy as np


def assign_classes(
    num_clients: int, num_classes: int, classes_per_client: int, rng: np.random.Generator
) -> np.ndarray:
    """Return the 0/1 matrix ``q[k, j]``: client ``k`` holds class ``j``.

    Clients choose ``classes_per_client`` distinct classes one after another;
    class ``j`` is chosen with probability proportional to
    ``exp(-Q_j * num_classes)``, where ``Q_j`` counts the earlier holders of ``j``.
    """
    held = np.zeros((num_clients, num_classes), dtype=np.int64)
    holders = np.zeros(num_classes)
    for k in range(num_clients):
        weights = np.exp(-(holders - holders.min()) * num_classes)
        chosen = rng.choice(
            num_classes, size=classes_per_client, replace=False, p=weights / weights.sum()
        )
        held[k, chosen] = 1
        holders[chosen] += 1
    return held


def extended_dirichlet_indices(
    labels: np.ndarray, num_clients: int, classes_per_client: int, alpha: float, seed: int
) -> list[np.ndarray]:
    """Split sample indices over clients, each holding at most ``classes_per_client`` classes.

    After `assign_classes`, every class ``j`` draws client shares
    ``p_j ~ Dir(alpha * q[:, j] + 1e-10)`` and sends each of its samples to a
    client drawn from ``p_j``. Clients may end up empty.

    Parameters
    ----------
    labels : np.ndarray
        Integer labels ``0 .. num_classes - 1``, one per sample.
    num_clients : int
        Number of clients.
    classes_per_client : int
        Classes per client ``C`` (at most the number of classes).
    alpha : float
        Concentration of the per-class Dirichlet over the class's holders.
    seed : int
        Seed of the class choice and the draws.

    Returns
    -------
    list[np.ndarray]
        For each client, the sorted int64 indices of its samples.
    """
    labels = np.asarray(labels, dtype=np.int64)
    num_classes = int(labels.max()) + 1
    if not 1 <= classes_per_client <= num_classes:
        raise ValueError(f"classes_per_client must be in [1, {num_classes}]")
    rng = np.random.default_rng(seed)
    held = assign_classes(num_clients, num_classes, classes_per_client, rng)
    owner = np.empty(len(labels), dtype=np.int64)
    for j in range(num_classes):
        members = np.flatnonzero(labels == j)
        shares = rng.dirichlet(alpha * held[:, j] + 1e-10)
        owner[members] = rng.choice(num_clients, size=members.size, p=shares / shares.sum())
    order = np.argsort(owner, kind="stable")
    return np.split(order, np.cumsum(np.bincount(owner, minlength=num_clients))[:-1])
