"""`Messenger`: the server's side of every exchange: push, pull, bytes, time, versions, rejects."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid

from flwr_split.metrics import DOWN, UP, ClientProfile, SimulatedClock, TrafficLog
from flwr_split.server.nodes import exchange
from flwr_split.server.roster import Roster
from flwr_split.wire import (
    ERROR_CODE_STALE_WEIGHTS,
    KEY_BOTTOM,
    KEY_CONFIG,
    KEY_ORDER,
    MSG_HELLO,
    NO_VERSION,
    ClientInfo,
    ProtocolError,
    StepOrder,
    compute_seconds,
)
from flwr_split.wire.guard import untrusted
from flwr_split.wire.limits import MAX_COMPUTE_SECONDS, MAX_REPLY_BYTES
from flwr_split.wire.replies import check_reply
from flwr_split.wire.sizes import constant_record

logger = logging.getLogger("flwr").getChild(__name__)

TIMED_PHASES = ("train", "sync")
"""Phases the simulated clock counts (evaluation and the hello are not training time)."""


@dataclass(frozen=True)
class Books:
    """Running totals of a `Messenger` at one moment (differences give a step's share)."""

    exchange_wall: float
    client_compute: float
    messages_sent: int
    sim_seconds: float


class Messenger:
    """Exchanges messages with the clients over a Grid and keeps the books of each exchange.

    For every exchange it books the bytes of each message and reply in the
    traffic log, the clients' reported compute time and the simulated transfer
    time on the clock (training phases only), the bottom-weights version each
    client acknowledged, and every dropped reply with its reason.

    Parameters
    ----------
    traffic : TrafficLog
        Where the bytes of every message go.
    clock : SimulatedClock
        The simulated clock of the run.
    step_timeout : float
        Seconds to wait for the replies of one exchange; late clients are dropped.
    session : ConfigRecord
        ``sl.cfg``, sent with every message (built once; never mutated).
    weights : Callable[[], ArrayRecord]
        Returns the server's bottom weights of the current version, sent to a
        client whose copy is of another version than the order assumes.
    roster : Roster
        Reads the hello replies and keeps what the run learns from them.
    """

    def __init__(
        self,
        traffic: TrafficLog,
        clock: SimulatedClock,
        step_timeout: float,
        session: ConfigRecord,
        weights: Callable[[], ArrayRecord],
        roster: Roster,
    ) -> None:
        self.roster = roster
        self.traffic = traffic
        self.session = constant_record(session)
        self.weights = weights
        self.clock = clock
        self.step_timeout = step_timeout
        self.grid: Grid | None = None
        self.profiles: list[ClientProfile] = []
        """Virtual resources of each partition, set once the clients are known."""
        self.client_versions: dict[int, int] = {}
        """Bottom-weights version each node holds, as far as the server knows."""
        self.rejected: list[tuple[int, int, str]] = []
        """``(step, partition_id, reason)`` of every dropped reply."""
        self.exchange_wall = 0.0
        """Wall seconds spent waiting for exchanges (push to last reply)."""
        self.client_compute = 0.0
        """Sum of the compute seconds clients reported for training exchanges."""
        self.messages_sent = 0
        """Messages pushed in training exchanges."""
        self.reply_budget: Callable[[ClientInfo, str, StepOrder | None], int] = (
            lambda client, message_type, order: MAX_REPLY_BYTES
        )
        """Most bytes the reply to a message may bring over a deployment
        (`flwr_split.server.pull`); the strategy derives it from the request."""
        self.max_compute_s = min(MAX_COMPUTE_SECONDS, step_timeout)
        """Most compute seconds one reply may book: a client cannot compute longer than
        the server waits (nor, with a long timeout, than `MAX_COMPUTE_SECONDS`)."""
        self._orders: dict[int, tuple[Message, StepOrder]] = {}
        """The order of each message `new_message` built and `send` has not sent yet, by
        ``id`` of the message (held with it, so the id stays its own)."""

    def snapshot(self) -> Books:
        """Return the running totals now."""
        return Books(
            self.exchange_wall, self.client_compute, self.messages_sent, self.clock.seconds
        )

    def state_dict(self) -> dict[str, Any]:
        """Return the exchange totals and the rejections so far."""
        return {
            "exchange_wall": self.exchange_wall,
            "client_compute": self.client_compute,
            "messages_sent": self.messages_sent,
            "rejected": [list(r) for r in self.rejected],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Add the totals and rejections of a `state_dict` before those booked since."""
        self.exchange_wall += float(state["exchange_wall"])
        self.client_compute += float(state["client_compute"])
        self.messages_sent += int(state["messages_sent"])
        self.rejected[:0] = [(int(s), int(p), str(r)) for s, p, r in state["rejected"]]

    def new_message(
        self,
        client: ClientInfo,
        message_type: str,
        order: StepOrder,
        records: RecordDict | None = None,
    ) -> Message:
        """Build a message with ``sl.cfg``, ``sl.order`` and any extra records.

        The server's bottom weights ride along when the client's copy is not of
        ``order.version``.
        """
        content = RecordDict({KEY_CONFIG: self.session, KEY_ORDER: order.to_record()})
        for key, record in (records or {}).items():
            content[key] = record
        if self.client_versions.get(client.node_id, NO_VERSION) != order.version:
            content[KEY_BOTTOM] = self.weights()
        message = Message(
            content, dst_node_id=client.node_id, message_type=message_type, group_id=str(order.step)
        )
        self._orders[id(message)] = (message, order)
        return message

    def send(
        self, step: int, phase: str, messages: list[tuple[ClientInfo, Message]]
    ) -> dict[int, RecordDict]:
        """Exchange messages; return the contents of good replies by node id.

        Error replies, missing replies and replies with anything the message
        did not ask for are logged and recorded in ``rejected``. A client that
        reports stale weights gets the server's weights with its next message.
        Reported compute seconds are clamped to ``max_compute_s``.
        """
        assert self.grid is not None, "the grid is set when the run starts"
        timed = phase in TIMED_PHASES
        bytes_down = {
            client.node_id: self.traffic.record(step, phase, client.partition_id, DOWN, message)
            for client, message in messages
        }
        if timed:
            self.messages_sent += len(messages)
        orders = [None if phase == "hello" else self._order_of(sent) for _, sent in messages]
        self._orders.clear()
        budgets = [
            self.reply_budget(client, sent.metadata.message_type, order)
            for (client, sent), order in zip(messages, orders, strict=True)
        ]
        started = time.perf_counter()
        replies = exchange(self.grid, [m for _, m in messages], self.step_timeout, budgets=budgets)
        self.exchange_wall += time.perf_counter() - started
        contents: dict[int, RecordDict] = {}
        timings, timed_ids = [], []
        for (client, sent), order in zip(messages, orders, strict=True):
            try:
                content, bytes_up = self._accept(step, phase, client, sent, order, replies)
            except ProtocolError as exc:
                self.reject(step, client, str(exc))
                continue
            if timed:
                compute_s = min(compute_seconds(content), self.max_compute_s)
                self.client_compute += compute_s
                profile = self.profiles[client.partition_id]
                timings.append((profile, bytes_down[client.node_id], compute_s, bytes_up))
                timed_ids.append(client.partition_id)
            contents[client.node_id] = content
            if order is not None:
                self.client_versions[client.node_id] = order.version
        if timed:
            self.clock.exchange(timings, timed_ids)
            if len(replies) < len(messages):  # the barrier waited for the timeout
                self.clock.server(self.step_timeout)
        return contents

    def _order_of(self, message: Message) -> StepOrder:
        """Return the order of ``message``: kept by `new_message`, else read from ``sl.order``."""
        made = self._orders.get(id(message))
        if made is not None and made[0] is message:
            return made[1]
        return StepOrder.from_record(message.content[KEY_ORDER])

    def _accept(
        self,
        step: int,
        phase: str,
        client: ClientInfo,
        sent: Message,
        order: StepOrder | None,
        replies: dict[int, Message],
    ) -> tuple[RecordDict, int]:
        """Return the content of ``client``'s reply and its bytes, or raise `ProtocolError`.

        The reply must be there, not an error, and hold only what ``sent``
        (with ``order``; None for the hello) asked for within the size cap
        (`check_reply`), checked before its bytes are counted; whatever fails
        underneath becomes the reason.
        """
        reply = replies.get(client.node_id)
        if reply is None:
            raise ProtocolError("no reply before the step timeout")
        with untrusted("unreadable reply"):
            if reply.has_error():
                if reply.error.code == ERROR_CODE_STALE_WEIGHTS:
                    self.client_versions.pop(client.node_id, None)
                raise ProtocolError(f"error reply: {reply.error.reason}")
            check_reply(sent.metadata.message_type, order, reply.content)
            return reply.content, self.traffic.record(step, phase, client.partition_id, UP, reply)

    def reject(self, step: int, client: ClientInfo, reason: str) -> None:
        """Drop ``client`` from ``step``: log and record the reason."""
        logger.warning(
            "step %d: dropping partition %d (node %d): %s",
            step,
            client.partition_id,
            client.node_id,
            reason,
        )
        self.rejected.append((step, client.partition_id, reason))

    def hello(self, node_ids: list[int]) -> list[ClientInfo]:
        """Send ``query.sl_hello`` to ``node_ids``; return the clients by partition id.

        Bad replies (see `Roster.read`), and every claimant of a partition
        claimed twice, are rejected; the roster admits the others. Raises
        `RuntimeError` if no client is left.
        """
        probes = [ClientInfo(n, -1, 0, 0) for n in node_ids]
        content = RecordDict({KEY_CONFIG: self.session})
        messages = [
            (c, Message(content, dst_node_id=c.node_id, message_type=MSG_HELLO)) for c in probes
        ]
        claims: dict[int, list[ClientInfo]] = {}
        for node_id, reply in self.send(0, "hello", messages).items():
            try:
                with untrusted("unreadable hello reply"):
                    client = self.roster.read(node_id, reply)
            except ProtocolError as exc:
                self.reject(0, ClientInfo(node_id, -1, 0, 0), f"bad hello reply: {exc}")
                continue
            claims.setdefault(client.partition_id, []).append(client)
        clients = {}
        for partition_id, claimants in claims.items():
            if len(claimants) == 1:
                clients[partition_id] = claimants[0]
                continue
            for client in claimants:  # the server cannot tell which one is honest
                self.reject(0, client, f"bad hello reply: partition {partition_id} claimed twice")
        if not clients:
            raise RuntimeError("no client answered query.sl_hello")
        admitted = [clients[k] for k in sorted(clients)]
        self.roster.admit(admitted)
        return admitted
