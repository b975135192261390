"""Sizes of what goes on the wire: payload bytes of a record, serialized bytes of a Message."""

from __future__ import annotations

from flwr.app import ArrayRecord, Message
from flwr.supercore.inflatable.inflatable_object import (
    get_all_nested_objects,
    no_object_id_recompute,
)

from flwr_split.wire.arrays import array_nbytes


def payload_nbytes(record: ArrayRecord) -> int:
    """Bytes of the numpy data in an ArrayRecord (without the .npy headers).

    Counted from each array's validated ``.npy`` header, or from its raw
    length when the header is invalid (`array_nbytes`): never from a claim.
    """
    return sum(array_nbytes(array) for array in record.values())


def message_nbytes(message: Message) -> int:
    """Total bytes of the serialized Message: all objects Flower sends for it.

    Object ids are computed once per object (Flower would otherwise rehash
    every subtree for each ancestor). A message Flower cannot serialize (a
    hostile one, handed over in process) counts the raw bytes of its arrays.
    """
    try:
        with no_object_id_recompute():
            objects = get_all_nested_objects(message)
            return int(sum(len(obj.deflate()) for obj in objects.values()))
    except Exception:  # noqa: BLE001 - counting must not fail on what a peer sent
        content = message.content if message.has_content() else {}
        return sum(
            payload_nbytes(record) for record in content.values() if isinstance(record, ArrayRecord)
        )
