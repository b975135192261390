"""The SL wire protocol: message types, RecordDict layout, payload conversion, validation.

One message type per SL action, following Flower's ``<category>.<action>`` rule:

``query.sl_hello``
    server -> client: ``sl.cfg``. Reply: ``sl.info`` (partition id, sample counts,
    per-class training counts, input shape and dtype of one sample).
``train.sl_step``
    server -> client: ``sl.cfg``, ``sl.order`` and, when due, ``sl.grad`` (the
    encoded cut-layer gradient of an earlier forward) and ``sl.bottom`` (bottom
    weights to adopt). Reply: ``sl.acts`` + ``sl.labels`` for a forward,
    ``sl.bottom_grad`` or ``sl.bottom`` when asked, and ``sl.info``.
``evaluate.sl_forward``
    server -> client: ``sl.cfg``, ``sl.order`` and maybe ``sl.bottom``. Reply:
    ``sl.acts`` + ``sl.labels`` of the client's test shard.

An encoded tensor travels as an ``ArrayRecord`` (the codec's payload arrays) plus
a ``ConfigRecord`` holding its metadata as JSON under the same key with the
suffix ``.meta``. Everything that arrives is validated here; a violation raises
`ProtocolError` with a reason meant for the log and the error reply.
"""

from __future__ import annotations

MSG_HELLO = "query.sl_hello"
MSG_STEP = "train.sl_step"
MSG_EVAL = "evaluate.sl_forward"

KEY_CONFIG = "sl.cfg"
KEY_ORDER = "sl.order"
KEY_INFO = "sl.info"
KEY_ACTS = "sl.acts"
KEY_GRAD = "sl.grad"
KEY_LABELS = "sl.labels"
KEY_BOTTOM = "sl.bottom"
KEY_BOTTOM_GRAD = "sl.bottom_grad"
META_SUFFIX = ".meta"

ERROR_CODE_BAD_MESSAGE = 4001
"""`flwr.app.Error` code of a reply to a message the client rejected."""
ERROR_CODE_STALE_WEIGHTS = 4002
"""`flwr.app.Error` code: the client lacks the bottom weights the order assumes."""


class ProtocolError(ValueError):
    """A message that does not follow the protocol (missing, malformed or wrong-sized field)."""

    code = ERROR_CODE_BAD_MESSAGE


class StaleWeightsError(ProtocolError):
    """The client does not hold the bottom weights version that the order assumes."""

    code = ERROR_CODE_STALE_WEIGHTS


Slice = tuple[int, int, int]
"""``(epoch, offset, count)`` of a client's training samples (see `batch_indices`)."""
NO_VERSION = -1
"""Weights version of a client that holds no bottom weights yet."""
