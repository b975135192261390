"""What a server's message may hold, known from its type and order: record names.

A client checks every message against what its type and ``sl.order`` call for
before reading anything else in it (`check_request`), just as the server checks
every reply against its request (`flwr_split.wire.replies`).
"""

from __future__ import annotations

from flwr.app import RecordDict

from flwr_split.wire import contract
from flwr_split.wire.contract import ProtocolError
from flwr_split.wire.orders import StepOrder


def allowed_request_keys(order: StepOrder | None) -> frozenset[str]:
    """Return the record names a good message to a client may hold.

    The hello (no ``order``) holds ``sl.cfg``; a step or evaluation message
    ``sl.cfg``, ``sl.order`` and the server's bottom weights ``sl.bottom``
    (attached whenever the client's copy may be of another version), plus the
    cut-layer gradient ``sl.grad`` and its metadata for a backward.
    """
    if order is None:
        return frozenset({contract.KEY_CONFIG})
    keys = {contract.KEY_CONFIG, contract.KEY_ORDER, contract.KEY_BOTTOM}
    if order.bwd_count:
        keys |= {contract.KEY_GRAD, contract.KEY_GRAD + contract.META_SUFFIX}
    return frozenset(keys)


def check_request(order: StepOrder | None, content: RecordDict) -> None:
    """Raise `ProtocolError` unless ``content`` holds only records `allowed_request_keys` names."""
    extra = set(content.keys()) - allowed_request_keys(order)
    if extra:
        raise ProtocolError(f"unexpected records {sorted(extra)[:4]} in the message")
