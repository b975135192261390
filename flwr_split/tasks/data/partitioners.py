"""The ``partitioner`` option as flwr-datasets `Partitioner` objects.

This module imports flwr-datasets (and with it Hugging Face ``datasets``,
pyarrow and pandas): import it inside the functions that partition, never at
the top of a module on the ClientApp's import path.
"""

from __future__ import annotations

import numpy as np
from datasets import Dataset
from flwr_datasets.partitioner import DirichletPartitioner, IidPartitioner, Partitioner

from flwr_split.tasks.data.extended_dirichlet import extended_dirichlet_indices


class ExtendedDirichletPartitioner(Partitioner):
    """At most ``classes_per_client`` classes per partition (`extended_dirichlet_indices`).

    flwr-datasets has no such partitioner; this one follows its interface, so
    `flwr_datasets.FederatedDataset` accepts it like its own.

    Parameters
    ----------
    num_partitions : int
        Number of partitions.
    partition_by : str
        Column of integer class labels.
    classes_per_client : int
        Classes per partition.
    alpha : float
        Concentration of every class's Dirichlet over its holders.
    seed : int
        Seed of the class choice and the draws.
    """

    def __init__(
        self,
        num_partitions: int,
        partition_by: str,
        classes_per_client: int,
        alpha: float,
        seed: int,
    ) -> None:
        super().__init__()
        self._num_partitions = num_partitions
        self._partition_by = partition_by
        self._classes_per_client = classes_per_client
        self._alpha = alpha
        self._seed = seed
        self._indices: list[np.ndarray] | None = None

    @property
    def num_partitions(self) -> int:
        """Number of partitions."""
        return self._num_partitions

    def load_partition(self, partition_id: int) -> Dataset:
        """Return the rows of partition ``partition_id`` (the split is drawn on first use)."""
        if self._indices is None:
            labels = np.asarray(self.dataset[self._partition_by], dtype=np.int64)
            self._indices = extended_dirichlet_indices(
                labels, self._num_partitions, self._classes_per_client, self._alpha, self._seed
            )
        return self.dataset.select(self._indices[partition_id])


def make_partitioner(
    scheme: str,
    num_partitions: int,
    *,
    alpha: float,
    seed: int,
    classes_per_client: int,
    min_partition_size: int = 1,
    partition_by: str = "label",
) -> Partitioner:
    """Return the flwr-datasets partitioner of a ``partitioner`` option value.

    Parameters
    ----------
    scheme : str
        ``"iid"`` (`IidPartitioner`: contiguous equal shards, so shuffle the
        rows first), ``"dirichlet"`` (`DirichletPartitioner` over
        ``partition_by``, not self-balancing) or ``"extended-dirichlet"``
        (`ExtendedDirichletPartitioner`).
    num_partitions : int
        Number of partitions.
    alpha : float
        Dirichlet concentration (both Dirichlet schemes).
    seed : int
        Seed of the Dirichlet draws.
    classes_per_client : int
        Classes per partition of ``"extended-dirichlet"``.
    min_partition_size : int (default: 1)
        ``"dirichlet"``: redraw until every partition has this many rows.
    partition_by : str (default: "label")
        Column of integer class labels.
    """
    if scheme == "iid":
        return IidPartitioner(num_partitions=num_partitions)
    if scheme == "dirichlet":
        return DirichletPartitioner(
            num_partitions=num_partitions,
            partition_by=partition_by,
            alpha=alpha,
            min_partition_size=min_partition_size,
            self_balancing=False,
            shuffle=True,
            seed=seed,
        )
    if scheme == "extended-dirichlet":
        return ExtendedDirichletPartitioner(
            num_partitions, partition_by, classes_per_client, alpha, seed
        )
    raise ValueError(f"no flwr-datasets partitioner for {scheme!r}")
