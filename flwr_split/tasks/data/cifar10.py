"""CIFAR-10 through flwr-datasets: each client loads and decodes only its own partition.

`flwr_datasets.FederatedDataset` reads ``uoft-cs/cifar10`` (network on first
use, then the Hugging Face cache), shuffles both splits with the seed and
partitions the 50,000 training images with the partitioner of the run's
``partitioner`` option (`make_partitioner`) and the 10,000 test images IID.
`SOURCE_ENV` can name a local folder in the Hub repository's layout instead
(``plain_text/train-*.parquet``, ``plain_text/test-*.parquet`` and the
README's ``configs`` block), e.g. a copy made on a machine with network.
"""

from __future__ import annotations

import os
from functools import lru_cache

from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.tasks.data.hub import HubImages

HUB_NAME = "uoft-cs/cifar10"
SOURCE_ENV = "FLWR_SPLIT_CIFAR10"
"""Environment variable naming another source: a Hub name or a local folder."""
IMAGE_COLUMN = "img"


def cifar10_source() -> str:
    """Return where CIFAR-10 is read from: `SOURCE_ENV`, else `HUB_NAME`."""
    return os.environ.get(SOURCE_ENV, HUB_NAME)


@lru_cache(maxsize=4)
def _federated(
    source: str, scheme: str, num_partitions: int, alpha: float, classes_per_client: int, seed: int
) -> HubImages:
    from flwr_datasets.partitioner import IidPartitioner

    from flwr_split.tasks.data.partitioners import make_partitioner

    train = make_partitioner(
        scheme, num_partitions, alpha=alpha, seed=seed, classes_per_client=classes_per_client
    )
    test = IidPartitioner(num_partitions=num_partitions)
    return HubImages(source, IMAGE_COLUMN, {"train": train, "test": test}, seed=seed)


def load_cifar10_partition(
    partition_id: int,
    num_partitions: int,
    *,
    scheme: str = "iid",
    alpha: float = 0.5,
    classes_per_client: int = 2,
    seed: int = 0,
    source: str = HUB_NAME,
) -> tuple[LabeledArrays, LabeledArrays]:
    """Return partition ``partition_id`` of CIFAR-10's training and test images.

    The ``FederatedDataset`` behind it is made once per process and settings;
    each call decodes only this partition's images.

    Parameters
    ----------
    partition_id : int
        This client's partition, in ``[0, num_partitions)``.
    num_partitions : int
        Number of clients.
    scheme, alpha, classes_per_client : str, float, int
        The training split's partitioner (`make_partitioner`); the test split
        is always split IID.
    seed : int (default: 0)
        Seed of the shuffle and of the partitioner.
    source : str (default: "uoft-cs/cifar10")
        Hub name or local folder (`cifar10_source`).

    Returns
    -------
    tuple[LabeledArrays, LabeledArrays]
        Images as uint8 pixels of shape (n, 3, 32, 32) (the model scales
        them), labels as int64 in [0, 10).

    Raises
    ------
    flwr_split.tasks.data.hub.HubUnavailableError
        If the source cannot be read (no network, nothing cached).
    """
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition_id {partition_id} not in [0, {num_partitions})")
    federated = _federated(source, scheme, num_partitions, alpha, classes_per_client, seed)
    return federated.load(partition_id)
