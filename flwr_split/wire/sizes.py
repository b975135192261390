"""Sizes of what goes on the wire: payload bytes of a record, serialized bytes of a Message.

Flower sends a Message as a tree of objects (Message, RecordDict, records,
Arrays, ArrayChunks), each once per distinct content: ``type SP child-ids SP
body-length NUL body``, a child id being the 64-hex SHA-256 of the child's
bytes. `message_nbytes` adds up those objects from the arrays' sizes and the
framing, without hashing or copying any array: children ids have a fixed
length, and objects of equal content (which Flower sends once) are found by
comparing bytes within groups of equal size, never by hashing them.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from typing import Any

import flwr.app.message.array as flwr_array
from flwr.app import Array, ArrayRecord, Message, RecordDict
from flwr.common.serde_utils import error_to_proto, metadata_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=E0611
from flwr.supercore.constant import HEAD_BODY_DIVIDER, HEAD_VALUE_DIVIDER

from flwr_split.wire.arrays import array_nbytes

ID_PLACEHOLDER = "0" * 64
"""Stands for an object id (64 hex digits) where only its length matters."""


def payload_nbytes(record: ArrayRecord) -> int:
    """Bytes of the numpy data in an ArrayRecord (without the .npy headers).

    Counted from each array's validated ``.npy`` header, or from its raw
    length when the header is invalid (`array_nbytes`): never from a claim.
    """
    return sum(array_nbytes(array) for array in record.values())


def framed_nbytes(type_name: str, children: int, body: int) -> int:
    """Bytes of one serialized Flower object: its head (type, child ids, body length) and body."""
    ids = children * len(ID_PLACEHOLDER) + max(children - 1, 0)
    head = len(type_name) + 2 * len(HEAD_VALUE_DIVIDER) + ids + len(str(body))
    return head + len(HEAD_BODY_DIVIDER) + body


class _Distinct:
    """Identities of contents seen so far: equal content, equal identity.

    Candidates are grouped by a cheap key (sizes, dtype, ...) and compared in
    full only within their group, so distinct arrays cost no pass over their
    data and equal ones one ``memcmp``.
    """

    def __init__(self) -> None:
        self._groups: dict[Hashable, list[tuple[Any, int]]] = {}
        self.count = 0

    def identity(self, key: Hashable, content: Any) -> tuple[int, bool]:
        """Return ``(identity, first time seen)`` of ``content`` in group ``key``."""
        group = self._groups.setdefault(key, [])
        for seen, identity in group:
            if seen == content:
                return identity, False
        group.append((content, self.count))
        self.count += 1
        return self.count - 1, True


class _Counter:
    """Adds up the distinct objects of one Message."""

    def __init__(self) -> None:
        self.total = 0
        self.chunks = _Distinct()
        self.arrays = _Distinct()
        self.records = _Distinct()

    def array(self, array: Array) -> int:
        """Count ``array`` (and its chunks) if new; return its identity."""
        data = array.data
        if not isinstance(data, bytes):
            raise TypeError(f"array data is {type(data).__name__}, not bytes")
        key = (array.dtype, tuple(array.shape), array.stype, len(data))
        identity, new = self.arrays.identity(key, data)
        if new:
            size = flwr_array.FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE
            view = memoryview(data)
            chunk_ids: list[int] = []
            for start in range(0, len(data), size):
                chunk = view[start : start + size] if len(data) > size else data
                chunk_id, first = self.chunks.identity(len(chunk), chunk)
                if first:
                    self.total += framed_nbytes("ArrayChunk", 0, len(chunk))
                chunk_ids.append(chunk_id)
            local = list(dict.fromkeys(chunk_ids))
            body = {
                "dtype": array.dtype,
                "shape": array.shape,
                "stype": array.stype,
                "arraychunk_ids": [local.index(c) for c in chunk_ids],
            }
            self.total += framed_nbytes("Array", len(local), len(json.dumps(body)))
        return identity

    def record(self, record: Any) -> int:
        """Count ``record`` (and its arrays) if new; return its identity."""
        if isinstance(record, ArrayRecord):
            arrays = tuple((name, self.array(array)) for name, array in record.items())
            identity, new = self.records.identity(("ArrayRecord", arrays), arrays)
            if new:
                distinct = len({array for _, array in arrays})
                body = len(json.dumps(dict.fromkeys(record, ID_PLACEHOLDER)))
                self.total += framed_nbytes("ArrayRecord", distinct, body)
            return identity
        deflated = record.deflate()  # config and metric records: small, no children
        identity, new = self.records.identity((type(record), len(deflated)), deflated)
        if new:
            self.total += len(deflated)
        return identity

    def message(self, message: Message) -> int:
        metadata = metadata_to_proto(message.metadata)
        metadata.message_id = ""
        error = error_to_proto(message.error) if message.has_error() else None
        body = ProtoMessage(metadata=metadata, content=None, error=error).ByteSize()
        if not message.has_content():
            return self.total + framed_nbytes("Message", 0, body)
        content: RecordDict = message.content
        records = {self.record(record) for record in content.values()}
        refs = len(json.dumps(dict.fromkeys(content, ID_PLACEHOLDER)))
        self.total += framed_nbytes("RecordDict", len(records), refs)
        return self.total + framed_nbytes("Message", 1, body)


def message_nbytes(message: Message) -> int:
    """Total bytes of the serialized Message: all distinct objects Flower sends for it.

    Computed from the arrays' sizes and the objects' framing (no hashing and
    no copy of any array); equal to the bytes Flower's serialization gives
    (tests check it for every codec and message type). A message Flower
    cannot serialize (a hostile one, handed over in process) counts the raw
    bytes of its arrays.
    """
    try:
        return _Counter().message(message)
    except Exception:  # noqa: BLE001 - counting must not fail on what a peer sent
        content = message.content if message.has_content() else {}
        return sum(
            payload_nbytes(record) for record in content.values() if isinstance(record, ArrayRecord)
        )
