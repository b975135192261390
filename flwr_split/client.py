"""Client side of split learning: the bottom model and the ClientApp handlers.

A SuperNode keeps nothing in memory between messages, so every handler rebuilds
its `ClientSession` from the message's ``sl.cfg`` and ``context.state`` (bottom
weights, optimizer state, weights version), and batches are a pure function of
``(seed, epoch, partition id, offset, count)``: the backward of step t-1
recomputes the forward of step t-1 instead of keeping activations around.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache, wraps

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

from flwr_split.codecs import Codec, CodecContext, CodecError, get_codec
from flwr_split.correction import QuantizationResidual
from flwr_split.data.arrays import LabeledArrays
from flwr_split.optim import load_optimizer_state, optimizer_state_to_record
from flwr_split.protocol import (
    ERROR_CODE_BAD_MESSAGE,
    KEY_ACTS,
    KEY_BOTTOM,
    KEY_BOTTOM_GRAD,
    KEY_CONFIG,
    KEY_GRAD,
    KEY_INFO,
    KEY_ORDER,
    ProtocolError,
    SessionConfig,
    StaleWeightsError,
    StepOrder,
    decode_tensor,
    get_encoded,
    info_record,
    load_weights,
    put_encoded,
    put_labels,
    require_record,
    weights_to_record,
)
from flwr_split.seeds import codec_seed
from flwr_split.session_cache import SESSION_CACHE
from flwr_split.tasks import build_model, client_data
from flwr_split.wire_arrays import to_array

logger = logging.getLogger("flwr").getChild(__name__)

Slice = tuple[int, int, int]
"""``(epoch, offset, count)`` of a client's training samples."""

STATE_WEIGHTS = "sl.bottom"
STATE_OPTIM = "sl.optim"
STATE_META = "sl.meta"
NO_VERSION = -1
"""Weights version of a client that holds no bottom weights yet."""
THREADS_KEY = "client-threads"
"""Run-config key: torch threads of a client process (0 or absent: torch's own setting)."""


def batch_indices(
    seed: int, epoch: int, partition_id: int, num_samples: int, offset: int, count: int
) -> np.ndarray:
    """Return local sample indices ``perm[offset:offset+count]`` of an epoch.

    ``perm`` is a permutation of ``range(num_samples)`` drawn from
    ``(seed, epoch, partition_id)``, so server and client agree on every batch
    without sending index lists, and a client can recompute any earlier batch.
    """
    if offset + count > num_samples:
        raise ProtocolError(
            f"slice [{offset}, {offset + count}) exceeds the client's {num_samples} samples"
        )
    return _epoch_permutation(seed, epoch, partition_id, num_samples)[offset : offset + count]


@lru_cache(maxsize=1024)
def _epoch_permutation(seed: int, epoch: int, partition_id: int, num_samples: int) -> np.ndarray:
    perm = np.random.default_rng([seed, epoch, partition_id]).permutation(num_samples)
    perm.flags.writeable = False
    return perm


@dataclass
class ClientSession:
    """Everything one handler call needs, rebuilt from the message and the context."""

    config: SessionConfig
    partition_id: int
    train: LabeledArrays
    test: LabeledArrays
    bottom: nn.Sequential
    optimizer: torch.optim.Optimizer
    uplink: Codec
    downlink: Codec
    version: int
    token: str = ""
    seq: int = -1
    graph: tuple[Slice, torch.Tensor] | None = None
    """Activations of the last training forward, with their autograd graph."""
    last_forward: tuple[Slice, int] | None = None
    """Slice and step of the last training forward (kept in ``context.state``)."""

    @classmethod
    def open(cls, message: Message, context: Context) -> ClientSession:
        """Return the session for this message; raise `ProtocolError` on bad config.

        A `SESSION_CACHE` hit returns the session that saved exactly the state
        the message arrives with; otherwise it is rebuilt from ``context.state``.
        """
        limit_torch_threads(context)
        config = SessionConfig.from_record(
            require_record(message.content, KEY_CONFIG, ConfigRecord)
        )
        partition_id, num_partitions = _partition(context)
        token, seq = _state_stamp(context)
        cached = SESSION_CACHE.lookup((context.run_id, context.node_id, token), seq)
        if cached is not None and cached.config == config and cached.partition_id == partition_id:
            return cached
        try:
            uplink, downlink = get_codec(config.uplink), get_codec(config.downlink)
            train, test = client_data(config.task, partition_id, num_partitions)
        except (CodecError, ValueError) as exc:
            raise ProtocolError(str(exc)) from exc
        bottom, _ = build_model(config.task)
        optimizer = config.optimizer.build(bottom.parameters())
        version, last_forward = NO_VERSION, None
        if STATE_WEIGHTS in context.state:
            load_weights(bottom, context.state[STATE_WEIGHTS], "stored bottom weights")
            version = int(context.state[STATE_META]["version"])
            last_forward = _last_forward(context.state[STATE_META])
        if STATE_OPTIM in context.state:
            load_optimizer_state(optimizer, context.state[STATE_OPTIM])
        return cls(
            config,
            partition_id,
            train,
            test,
            bottom,
            optimizer,
            uplink,
            downlink,
            version,
            token,
            seq,
            last_forward=last_forward,
        )

    def adopt_weights(self, content: RecordDict, version: int) -> None:
        """Load ``sl.bottom`` from the server if present, resetting the optimizer."""
        if KEY_BOTTOM not in content:
            return
        load_weights(self.bottom, require_record(content, KEY_BOTTOM, ArrayRecord), KEY_BOTTOM)
        self.optimizer = self.config.optimizer.build(self.bottom.parameters())
        self.version = version
        self.graph = None

    def check_version(self, version: int) -> None:
        """Refuse an order meant for other bottom weights than the ones held."""
        if self.version != version:
            raise StaleWeightsError(
                f"client holds bottom weights version {self.version}, the order assumes {version}"
            )

    def batch(self, epoch: int, offset: int, count: int) -> tuple[torch.Tensor, np.ndarray]:
        """Return inputs and labels of a training slice."""
        idx = batch_indices(
            self.config.task.seed, epoch, self.partition_id, len(self.train), offset, count
        )
        return torch.from_numpy(self.train.x[idx]), self.train.y[idx]

    def codec_context(self, step: int) -> CodecContext:
        """Return the uplink codec's context of a forward at ``step``."""
        return CodecContext(seed=codec_seed(self.config.task.seed, step, self.partition_id))

    def backward(self, content: RecordDict, order: StepOrder) -> ArrayRecord | None:
        """Recompute the forward of the ``bwd`` slice and back-propagate ``sl.grad``.

        With a non-zero ``correction`` weight λ, ``sl.grad + λ (Z − Z̃)`` is
        back-propagated, the residual recomputed by `residual`. Returns the
        bottom gradient as an ArrayRecord in ``"return"`` mode, else steps the
        local optimizer and returns None.
        """
        bwd_slice = (order.bwd_epoch, order.bwd_offset, order.bwd_count)
        self.optimizer.zero_grad(set_to_none=True)
        if self.graph is not None and self.graph[0] == bwd_slice:
            acts = self.graph[1]
        else:
            acts = self.bottom(self.batch(*bwd_slice)[0])
        self.graph = None
        grad = decode_tensor(
            self.downlink, get_encoded(content, KEY_GRAD), tuple(acts.shape), "cut-layer gradient"
        )
        if self.config.correction:
            grad = self.residual(bwd_slice, acts).correct(grad, self.config.correction)
        acts.backward(grad)
        if order.bwd_mode == "return":
            return ArrayRecord(
                {
                    name: to_array(
                        p.grad.detach().numpy()
                        if p.grad is not None
                        else np.zeros(tuple(p.shape), np.float32)
                    )
                    for name, p in self.bottom.named_parameters()
                }
            )
        self.optimizer.step()
        return None

    def residual(self, bwd_slice: Slice, acts: torch.Tensor) -> QuantizationResidual:
        """Recompute ``Z − Z̃`` of the last training forward, which must be ``bwd_slice``."""
        if self.last_forward is None or self.last_forward[0] != bwd_slice:
            raise ProtocolError(
                f"gradient correction needs the forward of slice {bwd_slice} to be this "
                f"client's last training forward, got {self.last_forward}"
            )
        ctx = self.codec_context(self.last_forward[1])
        try:
            return QuantizationResidual.recompute(self.uplink, acts, ctx)
        except CodecError as exc:
            raise ProtocolError(f"cannot re-encode activations: {exc}") from exc

    def forward(
        self,
        inputs: torch.Tensor,
        labels: np.ndarray,
        step: int,
        reply: RecordDict,
        train_slice: Slice | None = None,
    ) -> None:
        """Run the bottom; put encoded activations and labels in ``reply``.

        For a training slice with the cache on, the autograd graph is kept in
        ``graph`` so a later backward of that slice need not recompute it.
        """
        keep_graph = train_slice is not None and SESSION_CACHE.enabled
        with torch.set_grad_enabled(keep_graph):
            acts = self.bottom(inputs)
        if keep_graph:
            self.graph = (train_slice, acts)
            acts = acts.detach()
        if train_slice is not None:
            self.last_forward = (train_slice, step)
        try:
            encoded = self.uplink.encode(acts, self.codec_context(step))
        except CodecError as exc:
            raise ProtocolError(f"cannot encode activations: {exc}") from exc
        put_encoded(reply, KEY_ACTS, encoded)
        put_labels(reply, labels, self.config.task.definition.num_classes)

    def save(self, context: Context) -> None:
        """Persist weights, version and optimizer state in ``context.state``; cache self."""
        self.token = self.token or uuid.uuid4().hex
        self.seq += 1
        context.state[STATE_WEIGHTS] = weights_to_record(self.bottom)
        meta = {"version": self.version, "token": self.token, "seq": self.seq}
        if self.last_forward is not None:
            meta["last_forward"] = [*self.last_forward[0], self.last_forward[1]]
        context.state[STATE_META] = ConfigRecord(meta)
        context.state[STATE_OPTIM] = optimizer_state_to_record(self.optimizer)
        SESSION_CACHE.store((context.run_id, context.node_id, self.token), self.seq, self)


def limit_torch_threads(context: Context) -> None:
    """Run this process's torch ops on the run config's ``client-threads`` threads.

    The App's config sets 1: Ray actors, the ServerApp and the SuperLink share
    the machine's cores, where idle intra-op threads that spin slow everyone
    down (a 2-sample conv step went from 0.4 ms to 35 ms on average with 2
    threads on a loaded 2-core machine). 0 or no key leaves torch's setting
    alone (the in-process grid, where server and clients share one process).
    Torch's setting is process-wide, so it is applied only when it differs.
    """
    threads = context.run_config.get(THREADS_KEY, 0)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ProtocolError(f"run config '{THREADS_KEY}' must be an int >= 0, got {threads!r}")
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _state_stamp(context: Context) -> tuple[str, int]:
    """Return the ``(token, seq)`` of the last saved session state (``("", -1)`` if none)."""
    if STATE_META not in context.state:
        return "", -1
    meta = context.state[STATE_META]
    return str(meta.get("token", "")), int(meta.get("seq", -1))


def _last_forward(meta: ConfigRecord) -> tuple[Slice, int] | None:
    """Read ``(slice, step)`` of the last training forward from the state metadata."""
    if "last_forward" not in meta:
        return None
    epoch, offset, count, step = (int(v) for v in meta["last_forward"])
    return (epoch, offset, count), step


def _partition(context: Context) -> tuple[int, int]:
    try:
        partition_id = int(context.node_config["partition-id"])
        num_partitions = int(context.node_config["num-partitions"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(
            "node config needs integer 'partition-id' and 'num-partitions' "
            "(simulation sets them; pass --node-config to flower-supernode)"
        ) from exc
    return partition_id, num_partitions


def _order(message: Message) -> StepOrder:
    return StepOrder.from_record(require_record(message.content, KEY_ORDER, ConfigRecord))


Handler = Callable[[Message, Context], Message]


def reject_bad_messages(handler: Handler) -> Handler:
    """Turn any failure of ``handler`` into an error reply that names the reason."""

    @wraps(handler)
    def guarded(message: Message, context: Context) -> Message:
        code = ERROR_CODE_BAD_MESSAGE
        try:
            return handler(message, context)
        except ProtocolError as exc:
            code, reason = exc.code, f"{message.metadata.message_type} rejected: {exc}"
            logger.warning(reason)
        except Exception as exc:  # noqa: BLE001 - any failure must become a reply
            reason = f"{message.metadata.message_type} failed: {type(exc).__name__}: {exc}"
            logger.exception(reason)
        return Message(Error(code=code, reason=reason), reply_to=message)

    return guarded


@reject_bad_messages
def handle_hello(message: Message, context: Context) -> Message:
    """Reply with the client's partition id and sample counts (``query.sl_hello``)."""
    session = ClientSession.open(message, context)
    _, num_partitions = _partition(context)
    info = info_record(
        partition_id=session.partition_id,
        num_partitions=num_partitions,
        train_count=len(session.train),
        test_count=len(session.test),
        version=session.version,
    )
    return Message(RecordDict({KEY_INFO: info}), reply_to=message)


def _serve_order(
    message: Message, context: Context, work: Callable[[ClientSession, StepOrder, RecordDict], None]
) -> Message:
    """Open the session, adopt weights, check the version, do ``work``, save, reply."""
    started = time.perf_counter()
    session = ClientSession.open(message, context)
    try:
        order = _order(message)
        session.adopt_weights(message.content, order.version)
        session.check_version(order.version)
        reply = RecordDict()
        work(session, order, reply)
    except BaseException:
        SESSION_CACHE.evict((context.run_id, context.node_id, session.token))
        raise
    session.save(context)
    reply[KEY_INFO] = info_record(
        partition_id=session.partition_id, compute_s=time.perf_counter() - started
    )
    return Message(reply, reply_to=message)


@reject_bad_messages
def handle_step(message: Message, context: Context) -> Message:
    """Run one SL step (``train.sl_step``): backward of an earlier slice, then forward."""

    def step(session: ClientSession, order: StepOrder, reply: RecordDict) -> None:
        if order.bwd_count:
            bottom_grad = session.backward(message.content, order)
            if bottom_grad is not None:
                reply[KEY_BOTTOM_GRAD] = bottom_grad
        if order.return_weights:
            reply[KEY_BOTTOM] = weights_to_record(session.bottom)
        if order.fwd_count:
            fwd_slice = (order.fwd_epoch, order.fwd_offset, order.fwd_count)
            inputs, labels = session.batch(*fwd_slice)
            session.forward(inputs, labels, order.step, reply, train_slice=fwd_slice)

    return _serve_order(message, context, step)


@reject_bad_messages
def handle_evaluate(message: Message, context: Context) -> Message:
    """Send activations and labels of the client's whole test shard (``evaluate.sl_forward``)."""

    def evaluate(session: ClientSession, order: StepOrder, reply: RecordDict) -> None:
        session.forward(torch.from_numpy(session.test.x), session.test.y, order.step, reply)

    return _serve_order(message, context, evaluate)


def register_split_handlers(app: ClientApp) -> ClientApp:
    """Register the SL handlers on a user's ``ClientApp`` and return it."""
    app.query("sl_hello")(handle_hello)
    app.train("sl_step")(handle_step)
    app.evaluate("sl_forward")(handle_evaluate)
    return app
