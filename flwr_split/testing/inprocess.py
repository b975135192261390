"""`InProcessGrid`: a Flower Grid that runs a ClientApp in this process, without Ray.

It plays SuperLink and SuperNodes for tests and fast sweeps: each node has its
own `Context` (node config with ``partition-id``/``num-partitions``, persistent
``state``), and every pushed message is handled by calling the ClientApp, just
as a SuperNode would. Strategies cannot tell it from the simulation's Grid.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

ERROR_CODE_CLIENT_APP_FAILED = 5000
"""Error code of the reply to a message whose ClientApp raised."""


class InProcessGrid(Grid):
    """Run ``client_app`` for ``num_nodes`` virtual nodes inside this process.

    Parameters
    ----------
    client_app : ClientApp
        The ClientApp each node runs (e.g. `flwr_split.client.app.app`).
        A callable that returns ``None`` plays a node that never answers.
    num_nodes : int
        Number of nodes; node ``i`` gets ``partition-id = i``.
    run_config : dict, optional
        The run config every node's Context sees.
    node_configs : Sequence[dict] or None (default: None)
        Extra node-config entries of node ``i`` (e.g. its own ``data-path``),
        merged over ``partition-id`` / ``num-partitions``; one dict per node.
    run_id : int (default: 1)
        Run id used for messages and contexts.
    seed : int (default: 0)
        Seed of the node ids (random 63-bit ints, like Flower's).
    """

    def __init__(
        self,
        client_app: ClientApp,
        num_nodes: int,
        run_config: dict[str, bool | float | int | str] | None = None,
        run_id: int = 1,
        seed: int = 0,
        node_configs: Sequence[dict[str, bool | float | int | str]] | None = None,
    ) -> None:
        if node_configs is not None and len(node_configs) != num_nodes:
            raise ValueError(f"node_configs has {len(node_configs)} entries for {num_nodes} nodes")
        extra = node_configs or [{}] * num_nodes
        self.client_app = client_app
        node_ids = np.random.default_rng(seed).choice(2**62, size=num_nodes, replace=False) + 2
        self.contexts = {
            int(node_id): Context(
                run_id=run_id,
                node_id=int(node_id),
                node_config={"partition-id": i, "num-partitions": num_nodes, **extra[i]},
                state=RecordDict(),
                run_config=dict(run_config or {}),
            )
            for i, node_id in enumerate(node_ids)
        }
        self._run = Run.create_empty(run_id)
        self._inbox: dict[str, Message] = {}
        self._counter = 0
        self.handled = 0
        TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = (
            run_id,
            SUPERLINK_NODE_ID,
            1,
        )

    def set_run(self, run: Run) -> None:
        """Set the run (only its id is used)."""
        self._run = run

    @property
    def run(self) -> Run:
        """The current run."""
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Build a message (kept for the Grid interface; use ``Message(...)``)."""
        return Message(
            content, dst_node_id=dst_node_id, message_type=message_type, group_id=group_id, ttl=ttl
        )

    def get_node_ids(self) -> Iterable[int]:
        """Return the ids of all virtual nodes."""
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Queue messages for their nodes; return their ids."""
        ids = []
        for message in messages:
            if message.metadata.dst_node_id not in self.contexts:
                raise ValueError(f"no node with id {message.metadata.dst_node_id}")
            self._counter += 1
            message_id = f"inproc-{self._counter}"
            message.metadata.__dict__["_message_id"] = message_id
            self._inbox[message_id] = message
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """Handle the queued messages among ``message_ids`` and return the replies."""
        replies = []
        for message_id in list(message_ids):
            message = self._inbox.pop(message_id, None)
            if message is None:
                continue
            context = self.contexts[message.metadata.dst_node_id]
            try:
                reply = self.client_app(message, context)
            except Exception as exc:  # noqa: BLE001 - a SuperNode turns failures into error replies
                error = Error(
                    code=ERROR_CODE_CLIENT_APP_FAILED, reason=f"{type(exc).__name__}: {exc}"
                )
                reply = Message(error, reply_to=message)
            self.handled += 1
            if reply is not None:  # None plays a node that never answers
                replies.append(reply)
        return replies

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Push messages and return all replies (handled synchronously)."""
        return self.pull_messages(self.push_messages(messages))
