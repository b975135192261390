"""Pull replies from a deployed SuperLink within a byte budget per reply.

Over a deployment, Flower's ``HttpGrid.pull_messages`` fetches every object of a
reply (records, arrays, 5 MB array chunks) and builds the Message before the
server sees any of it: a reply carrying an extra 500 MiB array costs the
ServerApp that much memory, and more, whatever the strategy does with it
afterwards. `pull_replies` fetches the objects of each reply itself, counting
their bytes, and stops once they exceed the reply's budget: that reply becomes
an error reply that names the size, and the SuperLink is told to drop it.
Every other grid (the simulation's, `flwr_split.testing.InProcessGrid`) holds
its replies in memory already and is pulled as it is.

This reads ``HttpGrid``'s runtime client, a private attribute of flwr 1.42: a
grid without one is pulled as any other.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from flwr.app import Error, Message
from flwr.proto.message_pb2 import ConfirmMessageReceivedRequest  # pylint: disable=E0611
from flwr.proto.runtime_pb2 import PullAppMessagesRequest  # pylint: disable=E0611
from flwr.serverapp import Grid
from flwr.supercore.inflatable.inflatable_object import iterate_object_tree
from flwr.supercore.inflatable.inflatable_protobuf_utils import make_pull_object_fn_protobuf
from flwr.supercore.inflatable.inflatable_utils import (
    ObjectPullError,
    inflate_object_from_contents,
    pull_objects,
)

from flwr_split.wire import ProtocolError
from flwr_split.wire.guard import untrusted
from flwr_split.wire.limits import MAX_REPLY_BYTES

ERROR_CODE_REPLY_TOO_LARGE = 4001
"""Code of the error reply that stands for a reply over its budget (or unreadable)."""


class ByteBudget:
    """Counts the bytes of pulled objects; raises `ObjectPullError` past ``limit``.

    Parameters
    ----------
    limit : int
        Most bytes the objects of one reply may hold together.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0
        self._lock = threading.Lock()

    def wrap(self, fetch: Callable[[str], bytes]) -> Callable[[str], bytes]:
        """Return ``fetch`` counting what it returns against the budget."""

        def counted(object_id: str) -> bytes:
            content = fetch(object_id)
            with self._lock:
                self.spent += len(content)
                over = self.spent > self.limit
            if over:
                raise ObjectPullError(object_id, f"the reply exceeds {self.limit} bytes")
            return content

        return counted


def pull_replies(
    grid: Grid, sent: Mapping[str, Message], budgets: Mapping[str, int]
) -> dict[str, Message]:
    """Return the replies that have arrived, by the id of the message they answer.

    Parameters
    ----------
    grid : Grid
        The run's grid.
    sent : Mapping[str, Message]
        The messages still waiting for a reply, by message id.
    budgets : Mapping[str, int]
        Most bytes the reply to each message may bring (by message id;
        `MAX_REPLY_BYTES` where none is given), honoured on a deployed SuperLink.
    """
    runtime = getattr(grid, "_runtime_client", None)
    if runtime is None or not hasattr(runtime, "PullObject"):
        return {r.metadata.reply_to_message_id: r for r in grid.pull_messages(list(sent))}
    response = runtime.PullMessages(PullAppMessagesRequest(message_ids=list(sent)))
    fetch = make_pull_object_fn_protobuf(runtime.PullObject, grid.node, grid.run.run_id)
    replies = {}
    for proto, tree in zip(response.messages_list, response.message_object_trees, strict=True):
        asked, reply_id = proto.metadata.reply_to_message_id, proto.metadata.message_id
        if asked in sent:
            replies[asked] = _pull_one(
                fetch, tree, reply_id, sent[asked], budgets.get(asked, MAX_REPLY_BYTES)
            )
        runtime.ConfirmMessageReceived(  # the SuperLink may drop the reply's objects now
            ConfirmMessageReceivedRequest(
                node=grid.node, run_id=grid.run.run_id, message_object_id=reply_id
            )
        )
    return replies


def _pull_one(
    fetch: Callable[[str], bytes], tree: object, reply_id: str, request: Message, limit: int
) -> Message:
    """Fetch and build one reply within ``limit`` bytes; an error reply if it does not fit."""
    try:
        with untrusted("unreadable reply objects"):
            ids = [node.object_id for node in iterate_object_tree(tree)]  # type: ignore[arg-type]
            contents = pull_objects(ids, ByteBudget(limit).wrap(fetch))
            return inflate_object_from_contents(reply_id, contents)  # type: ignore[return-value]
    except ProtocolError as exc:
        return Message(Error(ERROR_CODE_REPLY_TOO_LARGE, str(exc)), reply_to=request)
