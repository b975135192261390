"""`SplitServer`: everything the server side of an SL run holds, assembled from its options."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from flwr.app import MetricRecord, RecordDict
from torch import nn

from flwr_split.codecs import get_codec
from flwr_split.common.devices import resolve_device
from flwr_split.metrics import ProfileConfig, TrafficLog
from flwr_split.options.declaration import AGGREGATIONS, SYNC_POLICIES
from flwr_split.sampling import Sampler, get_sampler
from flwr_split.server.batches import CutReader
from flwr_split.server.callbacks import SplitCallback
from flwr_split.server.checkpoint import (
    Position,
    load_checkpoint,
    plain,
    rng_states,
    set_rng_states,
)
from flwr_split.server.evaluation import Evaluator
from flwr_split.server.history import RunHistory
from flwr_split.server.messenger import Messenger
from flwr_split.server.model import ServerBottom
from flwr_split.server.result import SplitResult
from flwr_split.server.roster import Roster
from flwr_split.server.top import TopTrainer
from flwr_split.tasks import Optimization, OptimizerConfig, TaskConfig, build_model
from flwr_split.wire import (
    MSG_EVAL,
    MSG_STEP,
    NO_VERSION,
    ClientInfo,
    SessionConfig,
    StepOrder,
    weights_to_record,
)

logger = logging.getLogger("flwr").getChild(__name__)

REPLY_SLACK_BYTES = 2**20
"""Bytes a reply's budget allows beyond its arrays: texts and Flower's object headers."""


class SplitServer:
    """The server's side of a split-learning run, wired from the strategy's options.

    It holds the session config sent to clients, the codecs, the sampler, the
    server's copy of the bottom (`ServerBottom`), the top and its optimizer
    (`TopTrainer`), the exchange machinery (`Messenger`, `CutReader`), the
    evaluation (`Evaluator`), the rows of the run (`RunHistory`), the traffic
    log and the simulated clock. `strategies.base.SplitStrategy` adds the loop.

    Parameters
    ----------
    task : TaskConfig
        Task, cut layer and data partitioning (sent to every client). The
        registered `SplitTask` it names gives the model pair, the loss and
        metrics of the top, and the optimizer and scheduler factories. The
        server reads no data: the input shape and the class counts come with
        the clients' hello replies (`Roster`).
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
        union batches of about ``batch_size`` (see `flwr_split.sampling`).
    batch_size : int (default: 16)
        Batch size handed to the sampler.
    sync : str (default: "every_epoch")
        Bottom-model sync policy: ``"every_step"``, ``"every_epoch"`` or ``"never"``.
    eval_every : int (default: 20)
        Evaluate on the clients' test shards every this many steps (and at the end).
    min_available_nodes : int (default: 2)
        Wait until this many nodes are registered before the first message.
    step_timeout : float (default: 300.0)
        Seconds to wait for the replies of one exchange; late clients are dropped.
    node_timeout : float (default: 300.0)
        Seconds to wait for ``min_available_nodes`` nodes to register.
    measure_messages : bool (default: True)
        Also count the serialized size of every Message.
    profiles : ProfileConfig or None (default: None)
        Compute and bandwidth of the virtual clients for the simulated clock
        (``None``: every client as `ProfileConfig()` describes). Before each
        epoch the sampler gets each client's mean simulated exchange time of
        the previous epoch (`Sampler.set_delays`).
    device : str (default: "cpu")
        Where the top computes: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
        ``"auto"`` (CUDA if there is one). Tensors cross to the CPU only at the
        codec boundary; the server's copy of the bottom stays on the CPU.
    aggregation : str (default: "mean")
        How the clients' screened bottoms are combined where the policy
        averages them: ``"mean"`` (FedAvg, weighted by samples trained), or
        coordinate-wise, one vote per client, ``"median"`` or
        ``"trimmed-mean"`` (see `flwr_split.server.fedavg.aggregate`).
    trim_fraction : float (default: 0.2)
        Fraction of the values of each coordinate that ``"trimmed-mean"``
        drops at each end, in [0, 0.5).
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
        min_available_nodes: int = 2,
        step_timeout: float = 300.0,
        node_timeout: float = 300.0,
        measure_messages: bool = True,
        profiles: ProfileConfig | None = None,
        device: str = "cpu",
        aggregation: str = "mean",
        trim_fraction: float = 0.2,
    ) -> None:
        if sync not in SYNC_POLICIES:
            raise ValueError(f"sync must be one of {SYNC_POLICIES}, got {sync!r}")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
        if not 0.0 <= trim_fraction < 0.5:
            raise ValueError(f"trim_fraction must be in [0, 0.5), got {trim_fraction}")
        self.aggregation, self.trim_fraction = aggregation, trim_fraction
        if min(batch_size, eval_every, min_available_nodes) < 1:
            raise ValueError("batch_size, eval_every and min_available_nodes must be >= 1")
        self.session = SessionConfig(
            task, uplink, downlink, optimizer or OptimizerConfig(), correction
        )
        self.uplink, self.downlink = get_codec(uplink), get_codec(downlink)
        self.sampler: Sampler = get_sampler(sampler)
        self.sampler_spec, self.batch_size, self.sync = sampler, batch_size, sync
        self.eval_every, self.min_available_nodes = eval_every, min_available_nodes
        self.node_timeout = node_timeout
        self.profile_config = profiles or ProfileConfig()
        self.clock = self.profile_config.clock()
        self.traffic = TrafficLog(measure_messages=measure_messages)
        self.device = resolve_device(device)
        bottom, top = build_model(task)
        top.to(self.device)
        self.server_bottom = ServerBottom(bottom)
        """The server's copy of the bottom and its weights version."""
        self.roster = Roster(task)
        """What the clients' hello replies told: input and cut shape, pooled class shares."""
        self.messenger = Messenger(
            self.traffic,
            self.clock,
            step_timeout,
            self.session.to_record(),
            self.server_bottom.record,
            self.roster,
        )
        definition = task.definition
        optimization = Optimization(definition, self.session.optimizer, top.parameters())
        self.trainer = TopTrainer(
            top, optimization, self.downlink, definition.loss, task.seed, self.device
        )
        self.reader = CutReader(self.messenger, self.uplink, self.roster)
        self.messenger.reply_budget = self.reply_budget
        self.evaluator = Evaluator(self.reader, definition.loss, definition.metrics, self.device)
        self.history = RunHistory(self.roster)
        self.clients: list[ClientInfo] = []
        self._started = 0.0
        self._callbacks: list[SplitCallback] = []

    @property
    def bottom(self) -> nn.Module:
        """The server's copy of the bottom."""
        return self.server_bottom.module

    @property
    def top(self) -> nn.Module:
        """The server's half of the model."""
        return self.trainer.top

    @property
    def rejected(self) -> list[tuple[int, int, str]]:
        """``(step, partition_id, reason)`` of every reply dropped so far."""
        return self.messenger.rejected

    def settings(self) -> dict[str, object]:
        """Return the configuration: task fields (``task_*``), codecs, sync, sampler, optimizer."""
        task = {
            f"task_{k}" if k != "task" else k: v for k, v in self.session.task.as_dict().items()
        }
        return {
            **task,
            "uplink": str(self.uplink.get_config()),
            "downlink": str(self.downlink.get_config()),
            "correction": self.session.correction,
            "sync": self.sync,
            "aggregation": self.aggregation,
            "trim_fraction": self.trim_fraction,
            "sampler": self.sampler_spec,
            "batch_size": self.batch_size,
            "optimizer": self.session.optimizer.name,
            "lr": self.session.optimizer.lr,
        }

    def summary(self) -> str:
        """One line describing the configuration."""
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.settings().items())})"

    def reply_budget(self, client: ClientInfo, message_type: str, order: StepOrder | None) -> int:
        """Return the most bytes a good reply to this request holds, twice over, plus 1 MiB.

        The hello's reply (no ``order``) carries no arrays; a forward or an
        evaluation carries activations and targets (`CutReader.max_bytes`),
        a ``return`` backward the bottom's gradient and ``return_weights`` the
        bottom. 1 MiB covers the texts (`MAX_META_CHARS` of metadata) and
        Flower's object headers.
        """
        payload = 0
        if order is not None:
            count = client.test_count if message_type == MSG_EVAL else order.fwd_count
            if count:
                payload += self.reader.max_bytes(count)
            bottom = sum(t.numel() * t.element_size() for t in self.bottom.state_dict().values())
            payload += bottom * (
                (order.bwd_count > 0 and order.bwd_mode == "return") + order.return_weights
            )
        return 2 * payload + REPLY_SLACK_BYTES

    def checkpoint_state(self, at: Position) -> dict[str, Any]:
        """Return a checkpoint: `state_dict`, ``at``, the global random states, wall seconds."""
        return {
            "server": self.state_dict(),
            "position": at.as_dict(),
            "rng": rng_states(),
            "wall_s": time.perf_counter() - self._started,
        }

    def resume(self, path: str | Path) -> Position:
        """Continue from the checkpoint at ``path`` once the clients said hello; return where.

        Loads it (`load_state_dict`: same configuration and clients), restores
        the random states, sends the server's bottom at once to the clients
        that held it when the checkpoint was taken (phase ``resume``: the
        uninterrupted run's next message to them carries no weights, and a
        resumed run's clients start empty) and hands the checkpoint's tables to
        the callbacks (`SplitCallback.on_restore`).
        """
        state = load_checkpoint(path)
        self.load_state_dict(state["server"])
        set_rng_states(state["rng"])
        self._started -= float(state["wall_s"])
        at = Position(**state["position"])
        version, held = self.server_bottom.version, state["server"]["versions"]
        order = StepOrder(step=at.step, version=version)
        resync = [
            (c, self.messenger.new_message(c, MSG_STEP, order))
            for c in self.clients
            if held.get(c.partition_id) == version
        ]
        self.messenger.send(at.step, "resume", resync)
        history, steps = self.history.frames()
        restored = SplitResult(history, self.traffic.frame(), list(self.rejected), steps)
        for callback in self._callbacks:
            callback.on_restore(restored)
        logger.info("resuming from %s at step %d", path, at.step)
        return at

    def state_dict(self) -> dict[str, Any]:
        """Return what the server holds of a run, between steps (see `load_state_dict`).

        The configuration (`settings`) and the clients (partition, training and
        test samples) identify the run; the top and its optimizer, the server's
        bottom and its version, the bottom version each client holds, the
        rows, the traffic, the clock, the exchange totals and rejections and
        ``evaluate_fn``'s results let it continue.
        """
        return {
            "settings": self.settings(),
            "clients": [[c.partition_id, c.train_count, c.test_count] for c in self.clients],
            "trainer": self.trainer.state_dict(),
            "bottom": self.server_bottom.state_dict(),
            "history": self.history.state_dict(),
            "traffic": self.traffic.state_dict(),
            "clock": self.clock.state_dict(),
            "messenger": self.messenger.state_dict(),
            "versions": {
                c.partition_id: self.messenger.client_versions.get(c.node_id, NO_VERSION)
                for c in self.clients
            },
            "server_metrics": {k: dict(v) for k, v in self.evaluator.server_metrics.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the run a `state_dict` describes, once the clients have said hello.

        Rows, traffic and rejections booked since this server started (the
        hello) are kept after those of ``state``.

        Raises
        ------
        ValueError
            If ``state`` is of another configuration or other clients.
        """
        settings = plain(self.settings())
        if state["settings"] != settings:
            changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
            raise ValueError(f"the checkpoint is of another configuration: {changed}")
        clients = [[c.partition_id, c.train_count, c.test_count] for c in self.clients]
        if state["clients"] != clients:
            raise ValueError(
                f"the checkpoint's clients (partition, train and test samples) were "
                f"{state['clients']}, now {clients}"
            )
        self.trainer.load_state_dict(state["trainer"])
        self.server_bottom.load_state_dict(state["bottom"])
        self.history.load_state_dict(state["history"])
        self.traffic.load_state_dict(state["traffic"])
        self.clock.load_state_dict(state["clock"])
        self.messenger.load_state_dict(state["messenger"])
        self.evaluator.server_metrics = {
            int(k): MetricRecord(v) for k, v in state["server_metrics"].items()
        }

    def arrays(self) -> RecordDict:
        """Return the server's ``"bottom"`` and ``"top"`` weights as ArrayRecords."""
        return RecordDict(
            {"bottom": self.server_bottom.record(), "top": weights_to_record(self.top)}
        )
