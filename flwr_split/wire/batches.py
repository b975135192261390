"""Which samples a slice names: a permutation per (seed, epoch, client) that both sides draw."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from flwr_split.wire.contract import ProtocolError


def batch_indices(
    seed: int, epoch: int, partition_id: int, num_samples: int, offset: int, count: int
) -> np.ndarray:
    """Return local sample indices ``perm[offset:offset+count]`` of an epoch.

    ``perm`` is a permutation of ``range(num_samples)`` drawn from
    ``(seed, epoch, partition_id)``, so server and client agree on every batch
    without sending index lists, and a client can recompute any earlier batch.
    """
    if offset + count > num_samples:
        raise ProtocolError(
            f"slice [{offset}, {offset + count}) exceeds the client's {num_samples} samples"
        )
    return _epoch_permutation(seed, epoch, partition_id, num_samples)[offset : offset + count]


@lru_cache(maxsize=1024)
def _epoch_permutation(seed: int, epoch: int, partition_id: int, num_samples: int) -> np.ndarray:
    perm = np.random.default_rng([seed, epoch, partition_id]).permutation(num_samples)
    perm.flags.writeable = False
    return perm
