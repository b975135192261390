"""`SplitStrategy`: the server's SL loop on a Flower Grid, as a template method.

The loop lives here; the machinery it drives lives in `flwr_split.server`:
`Messenger` (exchanges, bytes, time, versions, rejections), `CutReader`
(activations in), `TopTrainer` (the top on the union batch), `Evaluator`
(test shards, centralized evaluation) and `RunHistory` (rows).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, RecordDict
from flwr.serverapp import Grid

from flwr_split.common.seeds import epoch_seed
from flwr_split.sampling import plan_offsets
from flwr_split.server import SplitResult, SplitServer
from flwr_split.server.batches import CutBatch
from flwr_split.server.callbacks import EvaluateFn, SplitCallback
from flwr_split.server.checkpoint import Checkpointing, Position
from flwr_split.server.model import load_arrays
from flwr_split.server.nodes import wait_for_nodes
from flwr_split.server.progress import ProgressBar, ProgressReporter, ProgressSink
from flwr_split.wire import MSG_EVAL, StepOrder

logger = logging.getLogger("flwr").getChild(__name__)


class SplitStrategy(SplitServer, ABC):
    """Base of server-side split-learning strategies.

    It owns the top model and its optimizer, the server's copy of the bottom
    (initial weights, and the synchronized weights where the policy has
    them), the uplink/downlink codecs, the sampler and the evaluation
    schedule. `start` runs the loop: wait for nodes, ``query.sl_hello``, then
    for each epoch the sampler's plan, one `train_step` per planned step,
    `end_epoch`, and an evaluation every ``eval_every`` steps. Subclasses
    implement `train_step` (and may override `end_epoch` / `finish`).

    Shaped like `flwr.serverapp.strategy.Strategy` (constructor options,
    ``start(grid, initial_arrays, ..., evaluate_fn)`` returning a result with
    the trained arrays), but not a subclass: an SL step is not an FL round.
    There is no ``configure_train``/``aggregate_train`` pair, because the
    server trains its own half on every step between a push and a pull
    (activations up, gradients down) instead of aggregating client models
    once per round; epochs and steps take the place of rounds, and the
    messages of a step are built by the `train_step` hook.

    Constructor arguments: those of `flwr_split.server.SplitServer`
    (task, codecs, correction, optimizer, sampler, batch size, sync policy,
    evaluation period, node requirements, timeouts, client profiles).
    """

    # ------------------------------------------------------------------ loop
    def start(
        self,
        grid: Grid,
        initial_arrays: Mapping[str, ArrayRecord] | None = None,
        num_epochs: int = 1,
        *,
        max_steps: int | None = None,
        evaluate_fn: EvaluateFn | None = None,
        callbacks: Sequence[SplitCallback] = (),
        progress: bool | ProgressSink = False,
        checkpoint_every: int = 0,
        checkpoint_path: str | Path | None = None,
        resume_from: str | Path | None = None,
    ) -> SplitResult:
        """Run SL for ``num_epochs`` epochs (or ``max_steps`` steps) and return the result.

        Parameters
        ----------
        grid : Grid
            Any Flower Grid: the simulation's, a deployed SuperLink's, or
            `flwr_split.testing.InProcessGrid`.
        initial_arrays : Mapping[str, ArrayRecord] or None (default: None)
            Starting weights: ``"bottom"`` and/or ``"top"`` state dicts (e.g.
            a `RecordDict`, or the ``bottom``/``top`` of an earlier result);
            ``None`` keeps the task's seeded initialization.
        num_epochs : int (default: 1)
            Passes over every client's training data.
        max_steps : int or None (default: None)
            Stop after this many steps even within an epoch.
        evaluate_fn : EvaluateFn or None (default: None)
            Centralized evaluation, as in Flower: ``evaluate_fn(step, arrays)``
            with ``arrays`` a RecordDict of the ``"bottom"`` and ``"top"``
            weights, called at every evaluation; what it returns (a
            MetricRecord, a dict or None) goes to the history row as
            ``server_<name>`` columns and to
            `SplitResult.evaluate_metrics_serverapp`.
        callbacks : Sequence[SplitCallback] (default: ())
            Told of every step, evaluation and epoch end (and of a resume).
        progress : bool or ProgressSink (default: False)
            ``True`` draws a progress bar on stderr (a line every few seconds
            where stderr is not a terminal): step, planned steps, ETA, epoch,
            the last evaluation's score and the training bytes so far. A
            callable instead takes each `flwr_split.server.progress.Progress`
            snapshot (about one a second, and one per evaluation).
        checkpoint_every : int (default: 0)
            Write a checkpoint to ``checkpoint_path`` at the first point where
            the strategy can be resumed (`resumable`) at least this many steps
            after the previous one; ``0`` writes none.
        checkpoint_path : str, Path or None (default: None)
            The checkpoint file; needed when ``checkpoint_every`` > 0.
        resume_from : str, Path or None (default: None)
            Continue the run a checkpoint was written for (same configuration,
            same clients; see `SplitServer.resume`): the rest of its steps give
            the history an uninterrupted run would have had.
        """
        if checkpoint_every < 0 or (checkpoint_every and checkpoint_path is None):
            raise ValueError("checkpoint_every must be >= 0, and > 0 needs a checkpoint_path")
        if checkpoint_every and not (self.resumable(True) or self.resumable(False)):
            raise ValueError(f"{self.summary()} has no point at which it can be resumed")
        load_arrays({"bottom": self.bottom, "top": self.top}, initial_arrays or {})
        self.server_bottom.reload()
        self.messenger.grid = grid
        self._started = time.perf_counter()
        self.evaluator.evaluate_fn = evaluate_fn
        self._callbacks = [*callbacks, *self._progress_callbacks(progress, num_epochs, max_steps)]
        logger.info("starting %s", self.summary())
        for callback in self._callbacks:
            callback.on_start()
        nodes = wait_for_nodes(grid, self.min_available_nodes, self.node_timeout)
        self.clients = self.messenger.hello(nodes)
        self.messenger.profiles = self.profile_config.assign(
            max(c.partition_id for c in self.clients) + 1
        )
        at = Position() if resume_from is None else self.resume(resume_from)
        saver = Checkpointing(Path(checkpoint_path or "."), checkpoint_every, at.step)
        counts = np.array([c.train_count for c in self.clients], dtype=np.int64)
        step, epoch = at.step, at.epoch
        for epoch in range(at.epoch, num_epochs):
            resumed = epoch == at.epoch and at.index > 0
            plan = np.array(at.plan, dtype=np.int64) if resumed else self._plan(epoch, counts)
            offsets = plan_offsets(plan)
            for callback in self._callbacks:
                callback.on_epoch_start(epoch, plan.shape[0])
            for t in range(at.index if resumed else 0, plan.shape[0]):
                if max_steps is not None and step >= max_steps:
                    break
                self._timed_step(step, epoch, plan[t], offsets[t])
                step += 1
                last = step == max_steps or (epoch == num_epochs - 1 and t == plan.shape[0] - 1)
                if step % self.eval_every == 0 and not last:
                    self._evaluate(step, epoch)
                if not last and t + 1 < plan.shape[0] and saver.due(step) and self.resumable(True):
                    saver.write(
                        self.checkpoint_state(Position(epoch, t + 1, step, plan.tolist())), step
                    )
            self._timed(self.end_epoch, step, epoch)
            for callback in self._callbacks:
                callback.on_epoch_end(epoch, step)
            if max_steps is not None and step >= max_steps:
                break
            if epoch + 1 < num_epochs and saver.due(step) and self.resumable(False):
                saver.write(self.checkpoint_state(Position(epoch + 1, 0, step)), step)
        self._timed(self.finish, step)
        self._evaluate(step, epoch)
        for callback in self._callbacks:
            callback.on_end(step)
        history, steps = self.history.frames()
        arrays = self.arrays()
        return SplitResult(
            history,
            self.traffic.frame(),
            list(self.rejected),
            steps,
            arrays["bottom"],
            arrays["top"],
            dict(self.evaluator.server_metrics),
        )

    def _plan(self, epoch: int, counts: np.ndarray) -> np.ndarray:
        """Tell the sampler last epoch's delays and return its plan of ``epoch``."""
        delays = self.clock.take_delays(len(self.messenger.profiles))
        positions = [c.partition_id for c in self.clients]
        self.sampler.set_delays(None if delays is None else delays[positions])
        return self.sampler.plan(counts, self.batch_size, seed=self._epoch_seed(epoch))

    def resumable(self, within_epoch: bool) -> bool:
        """Whether the server alone holds what a resumed run needs, after a step or an epoch.

        A resumed run is a new Flower run: its clients start without state and
        get the server's bottom. The base knows of no such point; a strategy
        says where it has one (`SplitServer.resume`).
        """
        return False

    def _progress_callbacks(
        self, progress: bool | ProgressSink, num_epochs: int, max_steps: int | None
    ) -> list[SplitCallback]:
        """Return the `ProgressReporter` that ``progress`` asks for (none for ``False``)."""
        if progress is False:
            return []
        bar = ProgressBar() if progress is True else None
        return [
            ProgressReporter(
                bar or progress,  # type: ignore[arg-type]
                num_epochs,
                max_steps,
                lambda: self.traffic.training_bytes("up") + self.traffic.training_bytes("down"),
                finish=bar.close if bar else None,
            )
        ]

    def _timed_step(self, step: int, epoch: int, counts: np.ndarray, offsets: np.ndarray) -> None:
        """Run `train_step` and add its row: plan, union batch, messages, seconds."""
        before, started = self.messenger.snapshot(), time.perf_counter()
        self._timed(self.train_step, step, epoch, counts, offsets)
        wall = time.perf_counter() - started
        row = self.history.add_step(step, epoch, counts, before, self.messenger.snapshot(), wall)
        for callback in self._callbacks:
            callback.on_step(row)

    def _timed(self, hook: Callable[..., None], *args: object) -> None:
        """Run a training hook; book its server-side time (wall minus exchanges) on the clock."""
        started, exchanged = time.perf_counter(), self.messenger.exchange_wall
        hook(*args)
        waited = self.messenger.exchange_wall - exchanged
        self.clock.server(time.perf_counter() - started - waited)

    def _epoch_seed(self, epoch: int) -> int:
        return epoch_seed(self.session.task.seed, epoch)

    @abstractmethod
    def train_step(self, step: int, epoch: int, counts: np.ndarray, offsets: np.ndarray) -> None:
        """Run one SL step: client ``k`` sends slice ``[offsets[k], offsets[k]+counts[k])``."""

    def end_epoch(self, step: int, epoch: int) -> None:  # noqa: B027 - optional hook
        """Act after the last step of an epoch (sync policies hook in here)."""

    def finish(self, step: int) -> None:  # noqa: B027 - optional hook
        """Act after the last step, before the final evaluation."""

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

    def _evaluate(self, step: int, epoch: int) -> None:
        """Evaluate on the clients' test shards (and ``evaluate_fn``); add the history row."""
        order = StepOrder(step=step, version=self.server_bottom.version)
        requests = [
            (c, self.messenger.new_message(c, MSG_EVAL, order))
            for c in self.clients
            if c.test_count > 0
        ]
        wall_s = time.perf_counter() - self._started
        scores, books = self.evaluator.evaluate(step, self.top, requests, self.arrays, wall_s)
        columns = {
            **self.settings(),
            "num_clients": len(self.clients),
            "k_effective": sum(c.train_count > 0 for c in self.clients),
        }
        row = self.history.add_evaluation({"step": step, "epoch": epoch, **scores}, books, columns)
        for callback in self._callbacks:
            callback.on_evaluation(row)
