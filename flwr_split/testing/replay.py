"""Rebuild a planned step's union batch from the task data, exactly as the clients draw it.

Client ``k`` serves consecutive slices of its per-epoch permutation
(`flwr_split.wire.batch_indices`), so the server, or a test, can rebuild any
step's union batch from the sampler's plan without index lists.
"""

from __future__ import annotations

import numpy as np

from flwr_split.sampling import plan_offsets
from flwr_split.tasks import TaskConfig, client_data
from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.wire import batch_indices


class EpochReplay:
    """The union batches of a task split over ``num_clients`` clients.

    Parameters
    ----------
    task : TaskConfig
        Task and partitioning, as the clients get it.
    num_clients : int
        Number of partitions (client ``k`` holds partition ``k``).
    """

    def __init__(self, task: TaskConfig, num_clients: int) -> None:
        self.task = task
        self.shards = [client_data(task, k, num_clients)[0] for k in range(num_clients)]
        self.counts = np.array([len(shard) for shard in self.shards], dtype=np.int64)

    def batches(self, plan: np.ndarray, epoch: int) -> list[LabeledArrays]:
        """Return the union batch of every step of ``plan`` (clients in partition order)."""
        offsets = plan_offsets(plan)
        return [self.union(row, offsets[t], epoch) for t, row in enumerate(plan)]

    def union(self, counts: np.ndarray, offsets: np.ndarray, epoch: int) -> LabeledArrays:
        """Return the union of the clients' slices ``[offsets[k], offsets[k] + counts[k])``."""
        parts = [
            self.shards[k].subset(
                batch_indices(
                    self.task.seed, epoch, k, int(self.counts[k]), int(offsets[k]), int(counts[k])
                )
            )
            for k in np.flatnonzero(counts)
        ]
        return LabeledArrays(
            np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts])
        )
