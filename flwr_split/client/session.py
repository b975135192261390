"""A client's SL session: its bottom model, optimizer, codecs and data, rebuilt per message.

A SuperNode keeps nothing in memory between messages, so every handler rebuilds
its `ClientSession` from the message's ``sl.cfg`` and ``context.state`` (bottom
weights, optimizer state, weights version), and batches are a pure function of
``(seed, epoch, partition id, offset, count)``: the backward of step t-1
recomputes the forward of step t-1 instead of keeping activations around.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
from torch import nn

from flwr_split.client.correction import QuantizationResidual
from flwr_split.client.session_cache import SESSION_CACHE
from flwr_split.client.state import (
    STATE_META,
    STATE_OPTIM,
    STATE_SCHEDULE,
    STATE_WEIGHTS,
    TensorRecord,
    last_forward_of,
    load_optimizer_state,
    optimizer_state_tensors,
    schedule_of,
    schedule_to_record,
    state_stamp,
)
from flwr_split.codecs import Codec, CodecContext, CodecError, LazySeedContext, get_codec
from flwr_split.common.devices import CPU, resolve_device
from flwr_split.common.seeds import codec_seed
from flwr_split.tasks import LabeledArrays, Optimization, SplitTask, build_model, node_partition
from flwr_split.tasks.downloads import check_downloads
from flwr_split.wire import (
    KEY_ACTS,
    KEY_BOTTOM,
    KEY_CONFIG,
    KEY_GRAD,
    NO_VERSION,
    ProtocolError,
    SessionConfig,
    Slice,
    StaleWeightsError,
    StepOrder,
    batch_indices,
    decode_tensor,
    get_encoded,
    load_weights,
    put_encoded,
    put_targets,
    require_record,
)
from flwr_split.wire.arrays import array_record, to_array
from flwr_split.wire.scalars import config_record

DEVICE_KEY = "device"
"""Run-config (or node-config) key: where this node's bottom computes (`resolve_device`)."""
THREADS_KEY = "client-threads"
"""Run-config key: torch threads of a client process (0 or absent: torch's own setting)."""


@dataclass
class ClientSession:
    """Everything one handler call needs, rebuilt from the message and the context."""

    config: SessionConfig
    partition_id: int
    train: LabeledArrays
    test: LabeledArrays
    bottom: nn.Module
    optimization: Optimization
    uplink: Codec
    downlink: Codec
    version: int
    token: str = ""
    seq: int = -1
    graph: tuple[Slice, torch.Tensor] | None = None
    """Activations of the last training forward, with their autograd graph."""
    last_forward: tuple[Slice, int] | None = None
    """Slice and step of the last training forward (kept in ``context.state``)."""
    device: torch.device = CPU
    """Where the bottom computes; tensors cross to the CPU only at the codec boundary."""
    saved_weights: TensorRecord = field(default_factory=TensorRecord)
    saved_optimizer: TensorRecord = field(default_factory=TensorRecord)
    """The ``context.state`` records, re-serialized only where a tensor changed."""

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
        partition_id, _ = partition_of(context)
        device = client_device(context)
        token, seq = state_stamp(context)
        cached = SESSION_CACHE.lookup((context.run_id, context.node_id, token), seq)
        if cached is not None and cached.config == config and cached.partition_id == partition_id:
            return cached
        try:
            uplink, downlink = get_codec(config.uplink), get_codec(config.downlink)
            definition = config.task.definition
            check_downloads(definition.name, definition.downloads)
            train, test = load_own_data(definition, context, config)
        except (CodecError, ValueError) as exc:
            raise ProtocolError(str(exc)) from exc
        bottom, _ = build_model(config.task)
        bottom.to(device)
        optimization = Optimization(config.task.definition, config.optimizer, bottom.parameters())
        version, last_forward = NO_VERSION, None
        saved_weights, saved_optimizer = TensorRecord(), TensorRecord()
        if STATE_WEIGHTS in context.state:
            record = context.state[STATE_WEIGHTS]
            load_weights(bottom, record, "stored bottom weights")
            saved_weights.adopt(record, bottom.state_dict(keep_vars=True))
            version = int(context.state[STATE_META]["version"])
            last_forward = last_forward_of(context.state[STATE_META])
        if STATE_OPTIM in context.state:
            record = context.state[STATE_OPTIM]
            load_optimizer_state(optimization.optimizer, record)
            saved_optimizer.adopt(record, optimizer_state_tensors(optimization.optimizer))
        if STATE_SCHEDULE in context.state:
            optimization.load_scheduler_state(schedule_of(context.state[STATE_SCHEDULE]))
        return cls(
            config,
            partition_id,
            train,
            test,
            bottom,
            optimization,
            uplink,
            downlink,
            version,
            token,
            seq,
            last_forward=last_forward,
            device=device,
            saved_weights=saved_weights,
            saved_optimizer=saved_optimizer,
        )

    def adopt_weights(self, content: RecordDict, version: int) -> None:
        """Load ``sl.bottom`` from the server if present, resetting the optimizer.

        A learning-rate schedule goes on where it was.
        """
        if KEY_BOTTOM not in content:
            return
        load_weights(self.bottom, require_record(content, KEY_BOTTOM, ArrayRecord), KEY_BOTTOM)
        self.optimization.restart(self.bottom.parameters())
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
        return LazySeedContext(partial(codec_seed, self.config.task.seed, step, self.partition_id))

    def backward(self, content: RecordDict, order: StepOrder) -> ArrayRecord | None:
        """Recompute the forward of the ``bwd`` slice and back-propagate ``sl.grad``.

        With a non-zero ``correction`` weight λ, ``sl.grad + λ (Z − Z̃)`` is
        back-propagated, the residual recomputed by `residual`. Returns the
        bottom gradient as an ArrayRecord in ``"return"`` mode, else steps the
        local optimizer and returns None.
        """
        bwd_slice = (order.bwd_epoch, order.bwd_offset, order.bwd_count)
        self.optimization.zero_grad()
        if self.graph is not None and self.graph[0] == bwd_slice:
            acts = self.graph[1]
        else:
            acts = self.bottom(self.batch(*bwd_slice)[0].to(self.device))
        self.graph = None
        grad = decode_tensor(
            self.downlink, get_encoded(content, KEY_GRAD), tuple(acts.shape), "cut-layer gradient"
        )
        if self.config.correction:
            grad = self.residual(bwd_slice, acts).correct(grad, self.config.correction)
        # acts.backward(grad) would import sympy for torch's check of an explicit gradient's
        # shape (about 1 s in a fresh ClientApp process); the scalar's backward hands the
        # bottom exactly ``grad`` (1 * grad), without it.
        (acts * grad.to(self.device)).sum().backward()
        if order.bwd_mode == "return":
            return array_record(
                {
                    name: to_array(
                        p.grad.detach().cpu().numpy()
                        if p.grad is not None
                        else np.zeros(tuple(p.shape), np.float32)
                    )
                    for name, p in self.bottom.named_parameters()
                }
            )
        self.optimization.step()
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
            acts = self.bottom(inputs.to(self.device))
        if keep_graph:
            self.graph = (train_slice, acts)
            acts = acts.detach()
        if train_slice is not None:
            self.last_forward = (train_slice, step)
        try:
            encoded = self.uplink.encode(acts.cpu(), self.codec_context(step))
        except CodecError as exc:
            raise ProtocolError(f"cannot encode activations: {exc}") from exc
        put_encoded(reply, KEY_ACTS, encoded)
        put_targets(reply, labels, self.config.task.definition.target)

    def save(self, context: Context) -> None:
        """Persist weights, version and optimizer state in ``context.state``; cache self.

        Only tensors that changed since the last save are serialized again
        (`TensorRecord`); records without a change are not written back.
        """
        self.token = self.token or uuid.uuid4().hex
        self.seq += 1
        _put(
            context, STATE_WEIGHTS, self.saved_weights.write(self.bottom.state_dict(keep_vars=True))
        )
        meta = {"version": self.version, "token": self.token, "seq": self.seq}
        if self.last_forward is not None:
            meta["last_forward"] = [*self.last_forward[0], self.last_forward[1]]
        context.state[STATE_META] = config_record(meta)
        optimizer = optimizer_state_tensors(self.optimization.optimizer)
        _put(context, STATE_OPTIM, self.saved_optimizer.write(optimizer))
        schedule = self.optimization.scheduler_state()
        if schedule is not None:
            context.state[STATE_SCHEDULE] = schedule_to_record(schedule)
        SESSION_CACHE.store((context.run_id, context.node_id, self.token), self.seq, self)


def _put(context: Context, key: str, record: ArrayRecord) -> None:
    """Set ``context.state[key]`` unless it already holds ``record`` itself."""
    if key not in context.state or context.state[key] is not record:
        context.state[key] = record


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


def client_device(context: Context) -> torch.device:
    """Return the device of this node's bottom: node config ``device``, else the run config's.

    A SuperNode can override the run's choice (``--node-config 'device="cuda:1"'``);
    without either key the bottom stays on the CPU.
    """
    name = context.node_config.get(DEVICE_KEY, context.run_config.get(DEVICE_KEY, "cpu"))
    try:
        return resolve_device(str(name))
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc


def partition_of(context: Context) -> tuple[int, int]:
    """Return ``(partition-id, num-partitions)`` from the node config; `ProtocolError` if bad."""
    try:
        return node_partition(context)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc


def load_own_data(
    task: SplitTask, context: Context, config: SessionConfig
) -> tuple[LabeledArrays, LabeledArrays]:
    """Run the task's ``load_partition`` and check what it returns.

    Raises
    ------
    ValueError
        If the loader's result is not two `LabeledArrays` with the same input
        shape and dtype and targets of the task's kind.
    """
    data = task.load_partition(context, config.task)
    if len(data) != 2 or not all(isinstance(part, LabeledArrays) for part in data):
        raise ValueError(
            f"task {task.name!r}: load_partition must return (train, test) LabeledArrays"
        )
    train, test = data
    if train.x.shape[1:] != test.x.shape[1:] or train.x.dtype != test.x.dtype:
        raise ValueError(
            f"task {task.name!r}: train inputs are {train.x.dtype}{train.x.shape[1:]}, "
            f"test inputs {test.x.dtype}{test.x.shape[1:]}"
        )
    task.target.check(train.y, "training")
    task.target.check(test.y, "test")
    return train, test
