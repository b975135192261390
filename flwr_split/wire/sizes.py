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
import operator
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Any

import flwr.app.message.array as flwr_array
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.serde_utils import error_to_proto, metadata_to_proto, record_value_dict_to_proto
from flwr.proto import recorddict_pb2
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


@lru_cache(maxsize=1024)
def array_nbytes_framed(
    dtype: str, shape: tuple[int, ...], stype: str, chunk_indices: tuple[int, ...]
) -> int:
    """Bytes of a serialized Array without its chunks (its metadata JSON, framed)."""
    body = {"dtype": dtype, "shape": shape, "stype": stype, "arraychunk_ids": chunk_indices}
    children = len(set(chunk_indices))
    return framed_nbytes("Array", children, len(json.dumps(body)))


@lru_cache(maxsize=1024)
def refs_nbytes_framed(type_name: str, names: tuple[str, ...], children: int) -> int:
    """Bytes of a serialized record holder (names -> child ids JSON, framed)."""
    body = len(json.dumps(dict.fromkeys(names, ID_PLACEHOLDER)))
    return framed_nbytes(type_name, children, body)


SCALAR_RECORDS = {
    ConfigRecord: (
        recorddict_pb2.ConfigRecord.Item,
        recorddict_pb2.ConfigRecordValue,
        (bool, int, float, str, bytes),
    ),
    MetricRecord: (
        recorddict_pb2.MetricRecord.Item,
        recorddict_pb2.MetricRecordValue,
        (float, int),
    ),
}
"""Protobuf item and value classes and value types of Flower's records without children."""


def varint_nbytes(value: int) -> int:
    """Bytes of a non-negative int as a protobuf varint."""
    return max(1, (value.bit_length() + 6) // 7)


def scalar_record_nbytes(record: ConfigRecord | MetricRecord) -> int:
    """Bytes of a serialized ConfigRecord or MetricRecord, item sizes remembered.

    The body is a protobuf of repeated items (field 1: a one-byte tag and the
    item's varint length before each); an item's size is Flower's own protobuf
    of that key and value, computed once per distinct (key, typed value).
    """
    kind = type(record)
    body = 0
    for key, value in record.items():
        if type(value) is list:
            body += _item_nbytes(kind, key, list, tuple(value), tuple(map(type, value)))
        else:
            body += _item_nbytes(kind, key, type(value), value, ())
    return framed_nbytes(kind.__name__, 0, body)


MAX_CONSTANT_RECORDS = 64
"""Records `constant_record` remembers; the oldest is forgotten past this many."""
_CONSTANT: dict[int, tuple[Any, int, tuple[str, ...]]] = {}
"""Record, serialized size and keys of each record declared constant, by ``id`` of the record
(held with it, so the id stays its own)."""


def constant_record(record: ConfigRecord | MetricRecord) -> ConfigRecord | MetricRecord:
    """Declare that ``record`` is never changed again, and return it.

    Its serialized size is computed here once, not for every message that
    carries it (the server's ``sl.cfg`` goes with every message). Changing it
    afterwards would make `message_nbytes` count its old size.
    """
    if len(_CONSTANT) >= MAX_CONSTANT_RECORDS:
        del _CONSTANT[next(iter(_CONSTANT))]
    _CONSTANT[id(record)] = (record, scalar_record_nbytes(record), tuple(record))
    return record


@lru_cache(maxsize=4096)
def _item_nbytes(
    kind: type, key: str, value_type: type, value: Any, element_types: tuple[type, ...]
) -> int:
    """Bytes of one record item in its record's protobuf: tag, length and Flower's protobuf.

    ``element_types`` tell lists of equal values but other types apart in the cache.
    """
    item, proto_value, allowed = SCALAR_RECORDS[kind]
    plain = list(value) if value_type is list else value
    (proto,) = record_value_dict_to_proto({key: plain}, list(allowed), proto_value).values()
    size = item(key=key, value=proto).ByteSize()
    return 1 + varint_nbytes(size) + size


class _Distinct:
    """Identities of contents seen so far: equal content, equal identity.

    Candidates are grouped by a cheap key (sizes, dtype, names, ...) and
    compared in full (``same``, default ``==``) only within their group, so
    distinct arrays cost no pass over their data and equal ones one ``memcmp``.
    """

    def __init__(self, same: Callable[[Any, Any], bool] = operator.eq) -> None:
        self._groups: dict[Hashable, list[tuple[Any, int]]] = {}
        self._same = same
        self.count = 0

    def identity(self, key: Hashable, content: Any) -> tuple[int, bool]:
        """Return ``(identity, first time seen)`` of ``content`` in group ``key``."""
        group = self._groups.setdefault(key, [])
        for seen, identity in group:
            if self._same(seen, content):
                return identity, False
        group.append((content, self.count))
        self.count += 1
        return self.count - 1, True


def _same_serialization(first: Any, second: Any) -> bool:
    return bool(first.deflate() == second.deflate())


class _Counter:
    """Adds up the distinct objects of one Message."""

    def __init__(self) -> None:
        self.total = 0
        self.chunks = _Distinct()
        self.arrays = _Distinct()
        self.array_records = _Distinct()
        self.scalar_records = _Distinct(_same_serialization)

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
            indices = tuple(local.index(c) for c in chunk_ids)
            self.total += array_nbytes_framed(array.dtype, key[1], array.stype, indices)
        return identity

    def record(self, record: Any) -> int:
        """Count ``record`` (and its arrays) if new; return its identity."""
        if isinstance(record, ArrayRecord):
            arrays = tuple((name, self.array(array)) for name, array in record.items())
            identity, new = self.array_records.identity(arrays, arrays)
            if new:
                distinct = len({array for _, array in arrays})
                self.total += refs_nbytes_framed("ArrayRecord", tuple(record), distinct)
            return identity
        if type(record) not in SCALAR_RECORDS:
            raise TypeError(f"{type(record).__name__} is not a Flower record")
        known = _CONSTANT.get(id(record))
        if known is not None and known[0] is record:
            size, keys = known[1], known[2]
        else:
            size, keys = scalar_record_nbytes(record), tuple(record)
        identity, new = self.scalar_records.identity((type(record), size, keys), record)
        if new:
            self.total += size
        return -1 - identity  # never an ArrayRecord's identity

    def message(self, message: Message) -> int:
        metadata = metadata_to_proto(message.metadata)
        metadata.message_id = ""
        error = error_to_proto(message.error) if message.has_error() else None
        body = ProtoMessage(metadata=metadata, content=None, error=error).ByteSize()
        if not message.has_content():
            return self.total + framed_nbytes("Message", 0, body)
        content: RecordDict = message.content
        records = {self.record(record) for record in content.values()}
        self.total += refs_nbytes_framed("RecordDict", tuple(content), len(records))
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
