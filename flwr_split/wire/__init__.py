"""The wire contract: message types, record keys, slices, versions and validation.

Everything that crosses the network between the ServerApp and the ClientApps is
defined here, and everything that arrives is validated here (`ProtocolError`).
"""

from flwr_split.wire.batches import batch_indices
from flwr_split.wire.contract import (
    ERROR_CODE_BAD_MESSAGE,
    ERROR_CODE_STALE_WEIGHTS,
    KEY_ACTS,
    KEY_BOTTOM,
    KEY_BOTTOM_GRAD,
    KEY_CONFIG,
    KEY_GRAD,
    KEY_INFO,
    KEY_LABELS,
    KEY_ORDER,
    META_SUFFIX,
    MSG_EVAL,
    MSG_HELLO,
    MSG_STEP,
    NO_VERSION,
    ProtocolError,
    Slice,
    StaleWeightsError,
)
from flwr_split.wire.hello import MAX_PARTITIONS, ClientInfo, compute_seconds, read_client_info
from flwr_split.wire.orders import SessionConfig, StepOrder, typed_field
from flwr_split.wire.records import (
    decode_tensor,
    get_encoded,
    get_labels,
    info_record,
    labels_dtype,
    load_weights,
    put_encoded,
    put_labels,
    read_tensors,
    require_record,
    weights_to_record,
)
from flwr_split.wire.sizes import message_nbytes, payload_nbytes

__all__ = [
    "ERROR_CODE_BAD_MESSAGE",
    "ERROR_CODE_STALE_WEIGHTS",
    "KEY_ACTS",
    "KEY_BOTTOM",
    "KEY_BOTTOM_GRAD",
    "KEY_CONFIG",
    "KEY_GRAD",
    "KEY_INFO",
    "KEY_LABELS",
    "KEY_ORDER",
    "MAX_PARTITIONS",
    "META_SUFFIX",
    "MSG_EVAL",
    "MSG_HELLO",
    "MSG_STEP",
    "NO_VERSION",
    "ClientInfo",
    "ProtocolError",
    "SessionConfig",
    "Slice",
    "StaleWeightsError",
    "StepOrder",
    "batch_indices",
    "compute_seconds",
    "decode_tensor",
    "get_encoded",
    "get_labels",
    "info_record",
    "labels_dtype",
    "load_weights",
    "message_nbytes",
    "payload_nbytes",
    "put_encoded",
    "put_labels",
    "read_client_info",
    "read_tensors",
    "require_record",
    "typed_field",
    "weights_to_record",
]
