"""Sizes of what goes on the wire: payload bytes of a record, serialized bytes of a Message."""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Message
from flwr.supercore.inflatable.inflatable_object import (
    get_all_nested_objects,
    no_object_id_recompute,
)


def payload_nbytes(record: ArrayRecord) -> int:
    """Bytes of the numpy data in an ArrayRecord (without the .npy headers)."""
    return int(
        sum(
            np.dtype(a.dtype).itemsize * int(np.prod(a.shape, dtype=np.int64))
            for a in record.values()
        )
    )


def message_nbytes(message: Message) -> int:
    """Total bytes of the serialized Message: all objects Flower sends for it.

    Object ids are computed once per object (Flower would otherwise rehash
    every subtree for each ancestor).
    """
    with no_object_id_recompute():
        objects = get_all_nested_objects(message)
        return int(sum(len(obj.deflate()) for obj in objects.values()))
