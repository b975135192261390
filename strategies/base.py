"""`SplitStrategy`: the server's SL loop on a Flower Grid, as a template method.

The loop lives here; the machinery it drives lives in `flwr_split.server`:
`Messenger` (exchanges, bytes, time, versions, rejections), `TopTrainer` (the
top on the union batch), `Evaluator` (test shards) and `RunHistory` (rows).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
import torch
from flwr.app import ArrayRecord, RecordDict
from flwr.serverapp import Grid

from flwr_split.codecs import get_codec
from flwr_split.common.seeds import epoch_seed
from flwr_split.metrics import ProfileConfig, TrafficLog
from flwr_split.sampling import Sampler, get_sampler, plan_offsets
from flwr_split.server import SplitResult
from flwr_split.server.batches import CutBatch, read_cut_batch
from flwr_split.server.evaluation import Evaluator
from flwr_split.server.history import RunHistory
from flwr_split.server.messenger import Messenger
from flwr_split.server.nodes import wait_for_nodes
from flwr_split.server.roster import Roster
from flwr_split.server.top import TopTrainer
from flwr_split.tasks import Optimization, OptimizerConfig, TaskConfig, build_model
from flwr_split.wire import (
    MSG_EVAL,
    ClientInfo,
    ProtocolError,
    SessionConfig,
    StepOrder,
    weights_to_record,
)

logger = logging.getLogger("flwr").getChild(__name__)

SYNC_POLICIES = ("every_step", "every_epoch", "never")


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
        Task, cut layer and data partitioning (sent to every client). The
        registered `SplitTask` it names gives the model pair, the loss and
        metrics of the top, and the optimizer and scheduler factories; the
        server reads no data: input shape and class counts come with the
        clients' hello replies (`flwr_split.server.roster.Roster`).
    uplink : str (default: "identity")
        Codec spec for activations, client to server (e.g. ``"quant:bits=8"``).
    downlink : str (default: "identity")
        Codec spec for cut-layer gradients, server to client.
    correction : float (default: 0.0)
        Weight λ of the clients' gradient correction ``G + λ (Z − Z̃)``
        (FedLite); ``0`` back-propagates the server's gradient as is.
    optimizer : OptimizerConfig (default: SGD, lr 0.05, momentum 0.9)
        Optimizer of the top and of every bottom, unless the task brings its own.
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
        self.uplink = get_codec(uplink)
        self.downlink = get_codec(downlink)
        self.sampler: Sampler = get_sampler(sampler)
        self.sampler_spec = sampler
        self.batch_size = batch_size
        self.sync = sync
        self.eval_every = eval_every
        self.node_timeout = node_timeout
        self.profile_config = profiles or ProfileConfig()
        self.clock = self.profile_config.clock()
        self.traffic = TrafficLog(measure_messages=measure_messages)
        self.bottom, top = build_model(task)
        self.version = 0
        """Version of the server's bottom weights; clients holding another get them sent."""
        self.roster = Roster(task)
        self.messenger = Messenger(
            self.traffic,
            self.clock,
            step_timeout,
            self.session.to_record(),
            self._weights_record,
            self.roster,
        )
        definition = task.definition
        self.trainer = TopTrainer(
            top,
            Optimization(definition, self.session.optimizer, top.parameters()),
            self.downlink,
            definition.loss,
            task.seed,
        )
        self.evaluator = Evaluator(
            self.messenger, self.uplink, self.roster, definition.loss, definition.metrics
        )
        self.history = RunHistory(self.roster)
        self.clients: list[ClientInfo] = []
        self._weights_cache: tuple[int, ArrayRecord] | None = None
        self._started = 0.0

    @property
    def top(self) -> torch.nn.Module:
        """The server's half of the model."""
        return self.trainer.top

    @property
    def rejected(self) -> list[tuple[int, int, str]]:
        """``(step, partition_id, reason)`` of every reply dropped so far."""
        return self.messenger.rejected

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
            `flwr_split.testing.InProcessGrid`.
        epochs : int (default: 1)
            Passes over every client's training data.
        min_nodes : int (default: 1)
            Wait until this many nodes are registered.
        max_steps : int or None (default: None)
            Stop after this many steps even within an epoch.
        progress : bool (default: False)
            Log a progress line at every evaluation.
        """
        self.messenger.grid = grid
        self._started = time.perf_counter()
        logger.info("starting %s", self.summary())
        self.clients = self.messenger.hello(wait_for_nodes(grid, min_nodes, self.node_timeout))
        self.messenger.profiles = self.profile_config.assign(
            max(c.partition_id for c in self.clients) + 1
        )
        counts = np.array([c.train_count for c in self.clients], dtype=np.int64)
        step = 0
        positions = [c.partition_id for c in self.clients]
        for epoch in range(epochs):
            delays = self.clock.take_delays(len(self.messenger.profiles))
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
        history, steps = self.history.frames()
        return SplitResult(history, self.traffic.frame(), list(self.rejected), steps)

    def _timed_step(self, step: int, epoch: int, counts: np.ndarray, offsets: np.ndarray) -> None:
        """Run `train_step` and record its wall, exchange, compute and simulated seconds."""
        books = self.messenger
        started, exchanged = time.perf_counter(), books.exchange_wall
        compute, simulated = books.client_compute, self.clock.seconds
        messages = books.messages_sent
        self._timed(self.train_step, step, epoch, counts, offsets)
        wall = time.perf_counter() - started
        exchange_s = books.exchange_wall - exchanged
        self.history.steps.append(
            {
                "step": step,
                "epoch": epoch,
                "clients": int(np.count_nonzero(counts)),
                "samples": int(counts.sum()),
                **self.history.take_batch_row(),
                "messages": books.messages_sent - messages,
                "wall_s": wall,
                "exchange_s": exchange_s,
                "server_s": wall - exchange_s,
                "client_compute_s": books.client_compute - compute,
                "sim_time_s": self.clock.seconds - simulated,
            }
        )

    def _timed(self, hook: Callable[..., None], *args: object) -> None:
        """Run a training hook; book its server-side time (wall minus exchanges) on the clock."""
        started, exchanged = time.perf_counter(), self.messenger.exchange_wall
        hook(*args)
        self.clock.server(
            time.perf_counter() - started - (self.messenger.exchange_wall - exchanged)
        )

    def _weights_record(self) -> ArrayRecord:
        """Return the server's bottom weights as a record, converted once per version."""
        if self._weights_cache is None or self._weights_cache[0] != self.version:
            self._weights_cache = (self.version, weights_to_record(self.bottom))
        return self._weights_cache[1]

    def _epoch_seed(self, epoch: int) -> int:
        return epoch_seed(self.session.task.seed, epoch)

    @abstractmethod
    def train_step(self, step: int, epoch: int, counts: np.ndarray, offsets: np.ndarray) -> None:
        """Run one SL step: client ``k`` sends slice ``[offsets[k], offsets[k]+counts[k])``."""

    def end_epoch(self, step: int, epoch: int) -> None:  # noqa: B027 - optional hook
        """Act after the last step of an epoch (sync policies hook in here)."""

    def finish(self, step: int) -> None:  # noqa: B027 - optional hook
        """Act after the last step, before the final evaluation."""

    # ------------------------------------------------------------ replies
    def read_cut_batch(
        self, step: int, client: ClientInfo, content: RecordDict, count: int
    ) -> CutBatch | None:
        """Decode and validate a client's activations and targets; None if rejected."""
        assert self.roster.cut_shape is not None, "the hello precedes any step"
        try:
            shape = (count, *self.roster.cut_shape)
            return read_cut_batch(self.uplink, client, content, shape, self.roster.target)
        except ProtocolError as exc:
            self.messenger.reject(step, client, str(exc))
            return None

    def top_step(self, step: int, batches: list[CutBatch]) -> dict[int, RecordDict]:
        """Train the top on the union batch; return the encoded gradient per node.

        A client missing from the result was rejected (see `TopTrainer`).
        """
        update = self.trainer.train(step, batches, self.messenger.reject)
        if update is None:
            return {}
        self.history.train_losses.append(update.loss)
        self.history.note_batch(update.labels, len(update.batches))
        return self.trainer.encode_gradients(step, update)

    # ----------------------------------------------------------- evaluation
    def _evaluate(self, step: int, epoch: int, progress: bool) -> None:
        clients = [c for c in self.clients if c.test_count > 0]
        order = StepOrder(step=step, version=self.version)
        requests = [(c, self.messenger.new_message(c, MSG_EVAL, order)) for c in clients]
        scores, samples = self.evaluator.run(step, self.top, requests)
        books = {
            **self.traffic.training_columns(),
            "eval_samples": samples,
            "rejected": len(self.rejected),
            "wall_s": time.perf_counter() - self._started,
            "sim_time_s": self.clock.seconds,
        }
        row = self.history.add_evaluation(
            {"step": step, "epoch": epoch, **scores}, books, self.config_columns()
        )
        if progress:
            logger.info(
                "step %d epoch %d: %s up %.2f MB down %.2f MB (%.1f s)",
                step,
                epoch,
                " ".join(f"{name} {value:.4f}" for name, value in scores.items()),
                books["bytes_up"] / 1e6,
                books["bytes_down"] / 1e6,
                row["wall_s"],
            )

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
