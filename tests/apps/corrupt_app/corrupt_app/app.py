"""flwr-split's ServerApp, and its ClientApp with a mod that corrupts the last partition's replies.

By step (the message's group id) modulo 3, a training or evaluation reply of
the last partition gets: a ``.npy`` header claiming 10^12 floats in place of its
activations, metadata JSON nested 200,000 deep, or an extra 500 MiB array.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable

from flwr_split.client import register_split_handlers
from flwr_split.wire import KEY_ACTS, META_SUFFIX, MSG_HELLO
from flwr_split.wire.arrays import to_array
from simulations.fuzz_mutations import npy_bytes, raw_array
from strategies.server_app import app as server_app

EXTRA_BYTES = 500 * 2**20
"""Size of the extra array (500 MiB)."""
DEPTH = 200_000
"""Nesting depth of the corrupted metadata JSON."""


def huge_header(reply: Message) -> None:
    """Replace the activations by a 64-byte array whose header claims 10^12 floats."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }"
    record = reply.content[KEY_ACTS]
    for name in list(record.keys()):
        record[name] = raw_array("float32", (10**12,), npy_bytes(header, b"\0" * 64))


def nested_json(reply: Message) -> None:
    """Replace the activations' metadata by JSON nested `DEPTH` deep."""
    reply.content[KEY_ACTS + META_SUFFIX] = ConfigRecord({"json": "[" * DEPTH + "]" * DEPTH})


def extra_array(reply: Message) -> None:
    """Add a record nobody asked for: `EXTRA_BYTES` of zeros."""
    reply.content["sl.extra"] = ArrayRecord({"x": to_array(np.zeros(EXTRA_BYTES, np.uint8))})


CORRUPTIONS = (huge_header, nested_json, extra_array)


def corrupt_last_partition(
    message: Message, context: Context, call_next: ClientAppCallable
) -> Message:
    """Answer as usual; on the last partition, damage every reply but the hello's."""
    reply = call_next(message, context)
    last = int(context.node_config["num-partitions"]) - 1
    if (
        int(context.node_config["partition-id"]) == last
        and message.metadata.message_type != MSG_HELLO
        and not reply.has_error()
        and KEY_ACTS in reply.content
    ):
        CORRUPTIONS[int(message.metadata.group_id or 0) % len(CORRUPTIONS)](reply)
    return reply


client_app = register_split_handlers(ClientApp(mods=[corrupt_last_partition]))

__all__ = ["client_app", "server_app"]
