"""`SplitStrategy`: the server's SL loop on a Flower Grid, as a template method."""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from flwr.app import ArrayRecord, Message, RecordDict
from flwr.serverapp import Grid
from torch import nn

from flwr_split.codecs import CodecContext, get_codec
from flwr_split.codecs.base import all_finite
from flwr_split.common.seeds import codec_seed, epoch_seed
from flwr_split.metrics.profiles import ClientProfile, ProfileConfig, SimulatedClock
from flwr_split.metrics.traffic import DOWN, UP, TrafficLog
from flwr_split.sampling import (
    Sampler,
    batch_deviation,
    class_shares,
    get_sampler,
    plan_offsets,
)
from flwr_split.server.nodes import exchange, wait_for_nodes
from flwr_split.server.result import SplitResult
from flwr_split.tasks import TaskConfig, build_model, cut_shape, load_task_data
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.wire import (
    ERROR_CODE_STALE_WEIGHTS,
    KEY_ACTS,
    KEY_BOTTOM,
    KEY_CONFIG,
    KEY_GRAD,
    KEY_ORDER,
    MSG_EVAL,
    MSG_HELLO,
    NO_VERSION,
    ClientInfo,
    ProtocolError,
    SessionConfig,
    StepOrder,
    compute_seconds,
    decode_tensor,
    get_encoded,
    get_labels,
    put_encoded,
    read_client_info,
    weights_to_record,
)

logger = logging.getLogger("flwr").getChild(__name__)

SYNC_POLICIES = ("every_step", "every_epoch", "never")
TIMED_PHASES = ("train", "sync")
"""Phases the simulated clock counts (evaluation and the hello are not training time)."""


@dataclass
class CutBatch:
    """Activations and labels one client sent for one slice."""

    client: ClientInfo
    acts: torch.Tensor
    labels: torch.Tensor


NON_FINITE = "activations give a NaN or inf loss or gradient at the server"
"""Rejection reason when a client's activations make the top's backward non-finite."""


class SplitStrategy(ABC):
    """Base of server-side split-learning strategies.

    It owns the top model and its optimizer, the server's copy of the bottom
    (initial weights, and the synchronized weights where the policy has
    them), the uplink/downlink codecs, the sampler and the evaluation
    schedule. `start` runs the loop: wait for nodes, ``query.sl_hello``, then
    for each epoch the sampler's plan, one `train_step` per planned step,
    `end_epoch`, and an evaluation every ``eval_every`` steps. Subclasses
    implement `train_step` (and may override `end_epoch` / `finish`).

    Parameters
    ----------
    task : TaskConfig
        Task, cut layer and data partitioning (sent to every client).
    uplink : str (default: "identity")
        Codec spec for activations, client to server (e.g. ``"quant:bits=8"``).
    downlink : str (default: "identity")
        Codec spec for cut-layer gradients, server to client.
    correction : float (default: 0.0)
        Weight λ of the clients' gradient correction ``G + λ (Z − Z̃)``
        (FedLite); ``0`` back-propagates the server's gradient as is.
    optimizer : OptimizerConfig (default: SGD, lr 0.05, momentum 0.9)
        Optimizer of the top and of every bottom.
    sampler : str (default: "fixed")
        Sampler spec; ``"fixed"`` sends ``batch_size`` samples per client per
        step; ``"ugs"``, ``"lds:c=C,delta=D"``, ``"fpls"`` and ``"fls"`` plan
        union batches of about ``batch_size`` (see `flwr_split.sampling`). Each
        step's union batch size, active clients and batch deviation go to
        ``SplitResult.steps``.
    batch_size : int (default: 16)
        Batch size handed to the sampler.
    sync : str (default: "every_epoch")
        Bottom-model sync policy: ``"every_step"``, ``"every_epoch"`` or ``"never"``.
    eval_every : int (default: 20)
        Evaluate on the clients' test shards every this many steps (and at the end).
    step_timeout : float (default: 300.0)
        Seconds to wait for the replies of one exchange; late clients are dropped.
    node_timeout : float (default: 300.0)
        Seconds to wait for ``min_nodes`` nodes to register.
    measure_messages : bool (default: True)
        Also count the serialized size of every Message.
    profiles : ProfileConfig or None (default: None)
        Compute and bandwidth of the virtual clients for the simulated clock
        (``None``: every client as `ProfileConfig()` describes). Before each
        epoch the sampler gets each client's mean simulated exchange time of
        the previous epoch (`Sampler.set_delays`).
    """

    def __init__(
        self,
        task: TaskConfig,
        *,
        uplink: str = "identity",
        downlink: str = "identity",
        correction: float = 0.0,
        optimizer: OptimizerConfig | None = None,
        sampler: str = "fixed",
        batch_size: int = 16,
        sync: str = "every_epoch",
        eval_every: int = 20,
        step_timeout: float = 300.0,
        node_timeout: float = 300.0,
        measure_messages: bool = True,
        profiles: ProfileConfig | None = None,
    ) -> None:
        if sync not in SYNC_POLICIES:
            raise ValueError(f"sync must be one of {SYNC_POLICIES}, got {sync!r}")
        if batch_size < 1 or eval_every < 1:
            raise ValueError("batch_size and eval_every must be >= 1")
        self.session = SessionConfig(
            task, uplink, downlink, optimizer or OptimizerConfig(), correction
        )
        self.session_record = self.session.to_record()
        """``sl.cfg`` as sent with every message (built once; never mutated)."""
        self.uplink = get_codec(uplink)
        self.downlink = get_codec(downlink)
        self.sampler: Sampler = get_sampler(sampler)
        self.sampler_spec = sampler
        self.batch_size = batch_size
        self.sync = sync
        self.eval_every = eval_every
        self.step_timeout = step_timeout
        self.node_timeout = node_timeout
        self.traffic = TrafficLog(measure_messages=measure_messages)
        self.bottom, self.top = build_model(task)
        self.top_optimizer = self.session.optimizer.build(self.top.parameters())
        self.cut_shape = cut_shape(task)
        self.num_classes = task.definition.num_classes
        self.version = 0
        self.client_versions: dict[int, int] = {}
        self.clients: list[ClientInfo] = []
        self.rejected: list[tuple[int, int, str]] = []
        self.profile_config = profiles or ProfileConfig()
        self.profiles: list[ClientProfile] = []
        self.clock: SimulatedClock = self.profile_config.clock()
        self.pooled_shares = class_shares(load_task_data(task)[0].y, self.num_classes)
        """Class distribution of the pooled training data (batch-deviation reference)."""
        self._exchange_wall = 0.0
        self._client_compute = 0.0
        """Sum of the compute seconds clients reported for training exchanges."""
        self._messages_sent = 0
        """Messages pushed in training exchanges."""
        self._steps: list[dict[str, float | int]] = []
        """One row per training step (`SplitResult.steps`)."""
        self._batch_row: dict[str, float | int] = {}
        """Union batch and batch deviation of the running step, noted by `top_step`."""
        self._grid: Grid | None = None
        self._weights_cache: tuple[int, ArrayRecord] | None = None
        self._train_losses: list[float] = []
        self._eval_from = 0
        self._history: list[dict[str, object]] = []
        self._started = 0.0

    def summary(self) -> str:
        """One line describing the configuration."""
        return (
            f"{type(self).__name__}(task={self.session.task.task}, cut={self.session.task.cut}, "
            f"uplink={self.uplink}, downlink={self.downlink}, "
            f"correction={self.session.correction}, sync={self.sync}, "
            f"sampler={self.sampler_spec}, batch_size={self.batch_size}, "
            f"optimizer={self.session.optimizer})"
        )

    # ------------------------------------------------------------------ loop
    def start(
        self,
        grid: Grid,
        *,
        epochs: int = 1,
        min_nodes: int = 1,
        max_steps: int | None = None,
        progress: bool = False,
    ) -> SplitResult:
        """Run SL for ``epochs`` epochs (or ``max_steps`` steps) and return the history.

        Parameters
        ----------
        grid : Grid
            Any Flower Grid: the simulation's, a deployed SuperLink's, or
            `flwr_split.testing.inprocess.InProcessGrid`.
        epochs : int (default: 1)
            Passes over every client's training data.
        min_nodes : int (default: 1)
            Wait until this many nodes are registered.
        max_steps : int or None (default: None)
            Stop after this many steps even within an epoch.
        progress : bool (default: False)
            Log a progress line at every evaluation.
        """
        self._grid = grid
        self._started = time.perf_counter()
        logger.info("starting %s", self.summary())
        self.clients = self._hello(wait_for_nodes(grid, min_nodes, self.node_timeout))
        self.profiles = self.profile_config.assign(max(c.partition_id for c in self.clients) + 1)
        counts = np.array([c.train_count for c in self.clients], dtype=np.int64)
        step = 0
        positions = [c.partition_id for c in self.clients]
        for epoch in range(epochs):
            delays = self.clock.take_delays(len(self.profiles))
            self.sampler.set_delays(None if delays is None else delays[positions])
            plan = self.sampler.plan(counts, self.batch_size, seed=self._epoch_seed(epoch))
            offsets = plan_offsets(plan)
            for t in range(plan.shape[0]):
                if max_steps is not None and step >= max_steps:
                    break
                self._timed_step(step, epoch, plan[t], offsets[t])
                step += 1
                last = step == max_steps or (epoch == epochs - 1 and t == plan.shape[0] - 1)
                if step % self.eval_every == 0 and not last:
                    self._evaluate(step, epoch, progress)
            self._timed(self.end_epoch, step, epoch)
            if max_steps is not None and step >= max_steps:
                break
        self._timed(self.finish, step)
        self._evaluate(step, epoch, progress)
        return SplitResult(
            pd.DataFrame(self._history),
            self.traffic.frame(),
            list(self.rejected),
            pd.DataFrame(self._steps),
        )

    def _timed_step(self, step: int, epoch: int, counts: np.ndarray, offsets: np.ndarray) -> None:
        """Run `train_step` and record its wall, exchange, compute and simulated seconds."""
        started, exchanged = time.perf_counter(), self._exchange_wall
        compute, simulated = self._client_compute, self.clock.seconds
        messages = self._messages_sent
        self._batch_row = {}
        self._timed(self.train_step, step, epoch, counts, offsets)
        wall = time.perf_counter() - started
        exchange_s = self._exchange_wall - exchanged
        self._steps.append(
            {
                "step": step,
                "epoch": epoch,
                "clients": int(np.count_nonzero(counts)),
                "samples": int(counts.sum()),
                **self._batch_row,
                "messages": self._messages_sent - messages,
                "wall_s": wall,
                "exchange_s": exchange_s,
                "server_s": wall - exchange_s,
                "client_compute_s": self._client_compute - compute,
                "sim_time_s": self.clock.seconds - simulated,
            }
        )

    def _timed(self, hook: Callable[..., None], *args: object) -> None:
        """Run a training hook; book its server-side time (wall minus exchanges) on the clock."""
        started, exchanged = time.perf_counter(), self._exchange_wall
        hook(*args)
        self.clock.server(time.perf_counter() - started - (self._exchange_wall - exchanged))

    def _epoch_seed(self, epoch: int) -> int:
        return epoch_seed(self.session.task.seed, epoch)

    @abstractmethod
    def train_step(self, step: int, epoch: int, counts: np.ndarray, offsets: np.ndarray) -> None:
        """Run one SL step: client ``k`` sends slice ``[offsets[k], offsets[k]+counts[k])``."""

    def end_epoch(self, step: int, epoch: int) -> None:  # noqa: B027 - optional hook
        """Act after the last step of an epoch (sync policies hook in here)."""

    def finish(self, step: int) -> None:  # noqa: B027 - optional hook
        """Act after the last step, before the final evaluation."""

    # ------------------------------------------------------------- messaging
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
        content = RecordDict({KEY_CONFIG: self.session_record, KEY_ORDER: order.to_record()})
        for key, record in (records or {}).items():
            content[key] = record
        if self.client_versions.get(client.node_id, NO_VERSION) != order.version:
            content[KEY_BOTTOM] = self._weights_record()
        return Message(
            content, dst_node_id=client.node_id, message_type=message_type, group_id=str(order.step)
        )

    def _weights_record(self) -> ArrayRecord:
        """Return the server's bottom weights as a record, converted once per version."""
        if self._weights_cache is None or self._weights_cache[0] != self.version:
            self._weights_cache = (self.version, weights_to_record(self.bottom))
        return self._weights_cache[1]

    def send(
        self, step: int, phase: str, messages: list[tuple[ClientInfo, Message]]
    ) -> dict[int, RecordDict]:
        """Exchange messages; return the contents of good replies by node id.

        Error replies and missing replies are logged and recorded in
        ``rejected``. A client that reports stale weights gets the server's
        weights with its next message.
        """
        assert self._grid is not None
        by_node = {client.node_id: client for client, _ in messages}
        sent = {client.node_id: message for client, message in messages}
        bytes_down = {
            client.node_id: self.traffic.record(step, phase, client.partition_id, DOWN, message)
            for client, message in messages
        }
        if phase in TIMED_PHASES:
            self._messages_sent += len(messages)
        started = time.perf_counter()
        replies = exchange(self._grid, [m for _, m in messages], self.step_timeout)
        self._exchange_wall += time.perf_counter() - started
        contents: dict[int, RecordDict] = {}
        timings, timed_ids = [], []
        for node_id, client in by_node.items():
            reply = replies.get(node_id)
            if reply is not None and not reply.has_error():
                bytes_up = self.traffic.record(step, phase, client.partition_id, UP, reply)
                if phase in TIMED_PHASES:
                    profile = self.profiles[client.partition_id]
                    compute_s = compute_seconds(reply.content)
                    self._client_compute += compute_s
                    timings.append((profile, bytes_down[node_id], compute_s, bytes_up))
                    timed_ids.append(client.partition_id)
            if reply is None:
                self.reject(step, client, "no reply before the step timeout")
            elif reply.has_error():
                self.reject(step, client, f"error reply: {reply.error.reason}")
                if reply.error.code == ERROR_CODE_STALE_WEIGHTS:
                    self.client_versions.pop(node_id, None)
            else:
                contents[node_id] = reply.content
                if phase != "hello":
                    order = StepOrder.from_record(sent[node_id].content[KEY_ORDER])
                    self.client_versions[node_id] = order.version
        if phase in TIMED_PHASES:
            self.clock.exchange(timings, timed_ids)
            if len(replies) < len(by_node):  # the barrier waited for the timeout
                self.clock.server(self.step_timeout)
        return contents

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

    def _hello(self, node_ids: list[int]) -> list[ClientInfo]:
        probes = [ClientInfo(n, -1, 0, 0) for n in node_ids]
        content = RecordDict({KEY_CONFIG: self.session_record})
        messages = [
            (c, Message(content, dst_node_id=c.node_id, message_type=MSG_HELLO)) for c in probes
        ]
        claims: dict[int, list[ClientInfo]] = {}
        for node_id, reply in self.send(0, "hello", messages).items():
            try:
                client = read_client_info(node_id, reply)
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
        return [clients[k] for k in sorted(clients)]

    def read_cut_batch(
        self, step: int, client: ClientInfo, content: RecordDict, count: int
    ) -> CutBatch | None:
        """Decode and validate a client's activations and labels; None if rejected."""
        try:
            acts = decode_tensor(
                self.uplink, get_encoded(content, KEY_ACTS), (count, *self.cut_shape), "activations"
            )
            labels = get_labels(content, count, self.num_classes)
        except ProtocolError as exc:
            self.reject(step, client, str(exc))
            return None
        return CutBatch(client, acts, labels)

    # ------------------------------------------------------------ top model
    def top_step(self, step: int, batches: list[CutBatch]) -> dict[int, RecordDict]:
        """Train the top on the union batch; return the encoded gradient per node.

        The loss is the mean cross-entropy over the union, so each client's
        gradient is its slice of d(loss)/d(activations) of the union. When the
        loss or a gradient comes out NaN or inf (finite activations far too
        large, say), nothing is applied: each client's batch is tried alone,
        those that are not finite on their own are rejected, and the step runs
        on the others. A client missing from the result was rejected.
        """
        acts, labels, loss = self._top_backward(batches)
        if not self._finite_backward(acts, loss):
            batches = [b for b in batches if self._finite_alone(step, b)]
            if batches:
                acts, labels, loss = self._top_backward(batches)
                if not self._finite_backward(acts, loss):
                    for batch in batches:
                        self.reject(step, batch.client, NON_FINITE + " (with the other clients)")
                    batches = []
            if not batches:
                return {}
        self.top_optimizer.step()
        self._train_losses.append(float(loss.detach()))
        self._log_batch(labels, len(batches))
        grads: dict[int, RecordDict] = {}
        for batch, grad in zip(
            batches, torch.split(acts.grad, [len(b.labels) for b in batches]), strict=True
        ):
            ctx = CodecContext(
                seed=codec_seed(self.session.task.seed + 1, step, batch.client.partition_id)
            )
            records = RecordDict()
            put_encoded(records, KEY_GRAD, self.downlink.encode(grad, ctx))
            grads[batch.client.node_id] = records
        return grads

    def _top_backward(
        self, batches: list[CutBatch]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward and backward of the top on ``batches`` (no step); ``(acts, labels, loss)``."""
        self.top_optimizer.zero_grad(set_to_none=True)
        acts = torch.cat([b.acts for b in batches]).requires_grad_(True)
        labels = torch.cat([b.labels for b in batches])
        loss = nn.functional.cross_entropy(self.top(acts), labels)
        loss.backward()
        return acts, labels, loss

    def _finite_backward(self, acts: torch.Tensor, loss: torch.Tensor) -> bool:
        """Whether the loss, the cut-layer gradient and every top gradient are finite."""
        grads = [acts.grad, *(p.grad for p in self.top.parameters() if p.grad is not None)]
        return all_finite(loss) and all(all_finite(g) for g in grads)

    def _finite_alone(self, step: int, batch: CutBatch) -> bool:
        """Run the top backward on ``batch`` alone; reject its client if it is not finite."""
        acts, _, loss = self._top_backward([batch])
        if self._finite_backward(acts, loss):
            return True
        self.reject(step, batch.client, NON_FINITE)
        return False

    def _log_batch(self, labels: torch.Tensor, active: int) -> None:
        """Note the union batch of this step: size, active clients and batch deviation."""
        shares = class_shares(labels.numpy(), self.num_classes)
        deviation = batch_deviation(shares, self.pooled_shares)
        self._batch_row = {
            "batch": len(labels),
            "active_clients": active,
            **{f"deviation_{name}": value for name, value in deviation.items()},
        }

    # ----------------------------------------------------------- evaluation
    def _test_metrics(self, step: int, batches: list[CutBatch]) -> tuple[float, float]:
        """Test loss and accuracy over ``batches`` (NaN if none).

        A client whose activations give NaN or inf logits is rejected and its
        rows are left out, so it cannot turn everybody's metrics into NaN.
        """
        if not batches:
            return float("nan"), float("nan")
        with torch.no_grad():
            logits = self.top(torch.cat([b.acts for b in batches]))
        labels = torch.cat([b.labels for b in batches])
        keep = torch.isfinite(logits).all(1)
        start = 0
        for batch in batches:
            rows = slice(start, start + len(batch.labels))
            start = rows.stop
            if not bool(keep[rows].all()):
                keep[rows] = False
                self.reject(step, batch.client, "test activations give NaN or inf logits")
        if not bool(keep.any()):
            return float("nan"), float("nan")
        logits, labels = logits[keep], labels[keep]
        loss = float(nn.functional.cross_entropy(logits, labels))
        return loss, float((logits.argmax(1) == labels).float().mean())

    def _evaluate(self, step: int, epoch: int, progress: bool) -> None:
        clients = [c for c in self.clients if c.test_count > 0]
        messages = [
            (c, self.new_message(c, MSG_EVAL, StepOrder(step=step, version=self.version)))
            for c in clients
        ]
        contents = self.send(step, "eval", messages)
        batches = [
            b
            for c in clients
            if c.node_id in contents
            and (b := self.read_cut_batch(step, c, contents[c.node_id], c.test_count)) is not None
        ]
        loss, accuracy = self._test_metrics(step, batches)
        row = {
            "step": step,
            "epoch": epoch,
            "accuracy": accuracy,
            "loss": loss,
            "train_loss": float(np.mean(self._train_losses))
            if self._train_losses
            else float("nan"),
            "bytes_up": self.traffic.training_bytes(UP),
            "bytes_down": self.traffic.training_bytes(DOWN),
            "activation_bytes": self.traffic.kind_bytes(UP, "activations"),
            "gradient_bytes": self.traffic.kind_bytes(DOWN, "gradients"),
            "eval_samples": int(sum(len(b.labels) for b in batches)),
            "rejected": len(self.rejected),
            "wall_s": time.perf_counter() - self._started,
            "sim_time_s": self.clock.seconds,
            **self._deviation_columns(),
            **self.config_columns(),
        }
        self._train_losses.clear()
        self._eval_from = len(self._steps)
        self._history.append(row)
        if progress:
            logger.info(
                "step %d epoch %d: accuracy %.4f loss %.4f up %.2f MB down %.2f MB (%.1f s)",
                step,
                epoch,
                accuracy,
                loss,
                row["bytes_up"] / 1e6,
                row["bytes_down"] / 1e6,
                row["wall_s"],
            )

    def _deviation_columns(self) -> dict[str, float]:
        """Mean batch deviation (L1, L2, max) and union batch over the steps since the last row."""
        recent = self._steps[self._eval_from :]
        names = ("batch_deviation", "batch_deviation_l2", "batch_deviation_max", "mean_batch")
        keys = ("deviation_l1", "deviation_l2", "deviation_max", "batch")
        columns = {}
        for name, key in zip(names, keys, strict=True):
            values = [row[key] for row in recent if key in row]  # absent if no client answered
            columns[name] = float(np.mean(values)) if values else float("nan")
        return columns

    def config_columns(self) -> dict[str, object]:
        """Return the configuration columns repeated on every history row."""
        return {
            **{
                f"task_{k}" if k != "task" else k: v for k, v in self.session.task.as_dict().items()
            },
            "uplink": str(self.uplink.get_config()),
            "downlink": str(self.downlink.get_config()),
            "correction": self.session.correction,
            "sync": self.sync,
            "sampler": self.sampler_spec,
            "batch_size": self.batch_size,
            "optimizer": self.session.optimizer.name,
            "lr": self.session.optimizer.lr,
            "num_clients": len(self.clients),
            "k_effective": sum(c.train_count > 0 for c in self.clients),
        }
