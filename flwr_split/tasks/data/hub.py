"""Image data sets of the Hugging Face Hub through flwr-datasets, as uint8 arrays.

flwr-datasets and ``datasets`` are imported inside the functions: they are
heavy, and only a client that loads such a data set needs them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from flwr_split.tasks.data.arrays import LabeledArrays

if TYPE_CHECKING:
    from datasets import Dataset
    from flwr_datasets.partitioner import Partitioner

SPLITS = ("train", "test")


class HubUnavailableError(RuntimeError):
    """A data set could not be loaded through flwr-datasets (no network and no cached copy)."""


def image_arrays(dataset: Dataset, image_column: str, label_column: str = "label") -> LabeledArrays:
    """Return the images of ``dataset`` as uint8 ``(n, channels, height, width)`` and its labels.

    Parameters
    ----------
    dataset : datasets.Dataset
        Rows with an ``Image`` column (grayscale or RGB, all of one size) and
        integer labels.
    image_column : str
        Name of the image column (``"img"`` in CIFAR-10, ``"image"`` in Fashion-MNIST).
    label_column : str (default: "label")
        Name of the label column.
    """
    columns = dataset.with_format("numpy")[:]
    images = np.asarray(columns[image_column])
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise ValueError(f"column {image_column!r} holds {images.dtype}{images.shape}, not images")
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    labels = np.asarray(columns[label_column]).astype(np.int64)
    return LabeledArrays(np.ascontiguousarray(images), labels)


class HubImages:
    """An image data set read through `flwr_datasets.FederatedDataset`, split by split.

    The ``FederatedDataset`` (and with it the loaded data set and the
    partitioners' assignment) is made once; `load` decodes the images asked for.

    Parameters
    ----------
    name : str
        A Hugging Face Hub name or a local folder in the same layout (what
        ``datasets.load_dataset`` takes as its path).
    image_column : str
        Name of the image column.
    partitioners : Mapping[str, Partitioner or int]
        ``FederatedDataset``'s partitioners of the ``"train"`` and ``"test"`` splits.
    **kwargs
        More ``FederatedDataset`` arguments (``shuffle``, ``seed``).
    """

    def __init__(
        self,
        name: str,
        image_column: str,
        partitioners: Mapping[str, Partitioner | int],
        **kwargs: object,
    ) -> None:
        from flwr_datasets import FederatedDataset

        self.name = name
        self.image_column = image_column
        self.federated = FederatedDataset(dataset=name, partitioners=dict(partitioners), **kwargs)

    def load(self, partition_id: int | None = None) -> tuple[LabeledArrays, LabeledArrays]:
        """Return ``(train, test)``: partition ``partition_id`` of both splits, or (None) all.

        Raises
        ------
        HubUnavailableError
            If the data set cannot be read (no network and nothing cached, or no such folder).
        """
        try:
            if partition_id is None:
                parts = [self.federated.load_split(split) for split in SPLITS]
            else:
                parts = [self.federated.load_partition(partition_id, split) for split in SPLITS]
        except OSError as exc:  # datasets' network and not-found errors are OSErrors
            raise HubUnavailableError(
                f"cannot load {self.name!r} through flwr-datasets (network needed on first "
                f"use, then the Hugging Face cache serves it): {exc}"
            ) from exc
        train, test = (image_arrays(part, self.image_column) for part in parts)
        return train, test
