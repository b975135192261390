"""What a reply may hold, known from the message it answers: record names and sizes.

The server checks every reply against its request before reading or counting
anything in it: only the records the request asked for (`allowed_reply_keys`)
and at most `MAX_REPLY_BYTES` of array data and text (`check_reply`).
"""

from __future__ import annotations

from flwr.app import ArrayRecord, RecordDict

from flwr_split.wire import contract
from flwr_split.wire.arrays import array_nbytes
from flwr_split.wire.contract import KEY_INFO, KEY_LABELS, ProtocolError
from flwr_split.wire.limits import MAX_META_CHARS, MAX_REPLY_BYTES
from flwr_split.wire.orders import StepOrder


def allowed_reply_keys(message_type: str, order: StepOrder | None) -> frozenset[str]:
    """Return the record names a good reply to a request may hold.

    A hello reply (no ``order``) holds ``sl.info``; a step or evaluation reply
    ``sl.info``, plus activations and labels for a forward, ``sl.bottom_grad``
    for a backward in ``"return"`` mode and ``sl.bottom`` when weights are
    asked for.
    """
    if order is None:
        return frozenset({KEY_INFO})
    keys = {KEY_INFO}
    if message_type == contract.MSG_EVAL or order.fwd_count:
        keys |= {contract.KEY_ACTS, contract.KEY_ACTS + contract.META_SUFFIX, KEY_LABELS}
    if order.bwd_count and order.bwd_mode == "return":
        keys.add(contract.KEY_BOTTOM_GRAD)
    if order.return_weights:
        keys.add(contract.KEY_BOTTOM)
    return frozenset(keys)


def raw_nbytes(content: RecordDict) -> int:
    """Return the bytes a content holds as it arrived: array data, strings, 8 per number.

    Raises `ProtocolError` for a string or bytes value over `MAX_META_CHARS`
    (the only strings of a reply are metadata JSON, capped there too).
    """
    total = 0
    for record in content.values():
        if isinstance(record, ArrayRecord):
            total += sum(array_nbytes(array) for array in record.values())
            continue
        for value in record.values():
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, str | bytes):
                    total += 8
                elif len(item) > MAX_META_CHARS:
                    raise ProtocolError(f"text of {len(item)} characters > {MAX_META_CHARS}")
                else:
                    total += len(item)
    return total


def check_reply(message_type: str, order: StepOrder | None, content: RecordDict) -> None:
    """Raise `ProtocolError` unless ``content`` holds only the records the request asked for.

    The request is known by its ``message_type`` and ``order`` (None for the hello).

    ``sl.labels`` may hold only its array ``y`` (the other records' arrays are
    checked by name where they are read).
    Also refuses a content of more than `MAX_REPLY_BYTES`, or with a text over
    `MAX_META_CHARS`, before any of it is read or counted.
    """
    extra = set(content.keys()) - allowed_reply_keys(message_type, order)
    if extra:
        raise ProtocolError(f"unexpected records {sorted(extra)[:4]} in the reply")
    labels = content.get(KEY_LABELS)
    if isinstance(labels, ArrayRecord) and set(labels.keys()) - {"y"}:
        raise ProtocolError(f"unexpected arrays {sorted(labels.keys())[:4]} in '{KEY_LABELS}'")
    nbytes = raw_nbytes(content)
    if nbytes > MAX_REPLY_BYTES:
        raise ProtocolError(f"reply of {nbytes} bytes exceeds {MAX_REPLY_BYTES}")
