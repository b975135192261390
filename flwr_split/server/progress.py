"""Live progress of a run: snapshots, the callback that takes them, and a progress bar.

`ProgressReporter` is a `SplitCallback` that turns the run's step and
evaluation rows into `Progress` snapshots (step, planned steps, epoch, the last
evaluation's score, training bytes, elapsed seconds) and hands them to a sink:
a `ProgressBar` in the same process, or, inside a ServerApp started by our
launchers, `Progress.to_line` printed to the log that ``flwr run --stream``
relays, where the launcher reads it back with `Progress.from_line` and draws
its own bar.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import IO

from tqdm import tqdm

from flwr_split.server.callbacks import SplitCallback
from flwr_split.server.result import SplitResult

PROGRESS_PREFIX = "flwr-split:progress "
"""Start of a progress line in a ServerApp's log."""

PROGRESS_ENV = "FLWR_SPLIT_PROGRESS_LINES"
"""Set (to ``1``) in the environment of a launcher's Flower processes: the
ServerApp then prints `Progress` lines for the launcher's bar instead of drawing one."""


@dataclass(frozen=True)
class Progress:
    """Where a run is.

    Parameters
    ----------
    step : int
        Training steps done.
    total : int
        Steps the run will take (exact for samplers with a fixed plan length,
        else an estimate from the current epoch's plan); 0 before training,
        while the run waits for its nodes and their hello replies.
    epoch : int
        Current epoch, from 0.
    epochs : int
        Epochs of the run.
    bytes : int
        Training bytes on the wire so far, up and down.
    elapsed : float
        Seconds since training started (the first epoch's plan), or, before
        that, since the run started.
    metric : str (default: "")
        Name of the last evaluation's first score (``accuracy`` for the
        classification tasks); empty before the first evaluation.
    value : float or None (default: None)
        That score.
    done : bool (default: False)
        Whether the run has ended (the last snapshot of a run).
    resumed : int (default: 0)
        Steps done before training (re)started: those of the checkpoint a
        resumed run continues; the rate counts only the steps after them.
    """

    step: int
    total: int
    epoch: int
    epochs: int
    bytes: int
    elapsed: float
    metric: str = ""
    value: float | None = None
    done: bool = False
    resumed: int = 0

    def to_line(self) -> str:
        """Return the snapshot as one log line (`PROGRESS_PREFIX` and JSON)."""
        return PROGRESS_PREFIX + json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_line(cls, line: str) -> Progress | None:
        """Return the snapshot a `to_line` line holds, or None for any other line."""
        start = line.find(PROGRESS_PREFIX)
        if start < 0:
            return None
        try:
            return cls(**json.loads(line[start + len(PROGRESS_PREFIX) :]))
        except (ValueError, TypeError):
            return None

    @property
    def training(self) -> bool:
        """Whether training has started (the run knows its planned steps)."""
        return self.total > 0

    def postfix(self) -> str:
        """Return epoch, the last score and the bytes so far as text for a progress bar."""
        if not self.training:
            return STARTING
        score = f"{self.metric} {self.value:.4f}" if self.value is not None else "no eval yet"
        return f"epoch {self.epoch + 1}/{self.epochs}, {score}, {self.bytes / 1e6:.1f} MB"


STARTING = "starting: waiting for the nodes and their hello replies"
"""What a progress bar says before training starts."""

ProgressSink = Callable[[Progress], None]
"""Takes each `Progress` snapshot of a run."""


class ProgressReporter(SplitCallback):
    """Turn a run's rows into `Progress` snapshots and send them to ``sink``.

    A snapshot goes out after a step if ``interval`` seconds passed since the
    previous one, and after every evaluation.

    Parameters
    ----------
    sink : ProgressSink
        Takes the snapshots.
    num_epochs : int
        Epochs of the run.
    max_steps : int or None
        The run's step limit, if any.
    training_bytes : Callable[[], int]
        Returns the training bytes up and down so far.
    interval : float (default: 1.0)
        Least seconds between two snapshots sent after steps.
    finish : Callable[[], None] or None (default: None)
        Called after the last snapshot, when the run ends (say, `ProgressBar.close`).
    """

    def __init__(
        self,
        sink: ProgressSink,
        num_epochs: int,
        max_steps: int | None,
        training_bytes: Callable[[], int],
        interval: float = 1.0,
        finish: Callable[[], None] | None = None,
    ) -> None:
        self.sink = sink
        self.finish = finish
        self.num_epochs = num_epochs
        self.max_steps = max_steps
        self.training_bytes = training_bytes
        self.interval = interval
        self.started: float | None = None
        self.step = self.epoch = self.total = 0
        self.metric, self.value = "", None
        self.done = False
        self.resumed = 0
        self._created = time.perf_counter()
        self._sent = float("-inf")

    def on_start(self) -> None:
        """Send the first snapshot: the run starts, no steps planned yet."""
        self._send()

    def on_epoch_start(self, epoch: int, steps: int) -> None:
        """Estimate the run's steps from this epoch's plan: ``steps`` for each epoch left."""
        if self.started is None:
            self.started = time.perf_counter()
        self.epoch = epoch
        self.total = self.step + steps * (self.num_epochs - epoch)
        if self.max_steps is not None:
            self.total = min(self.total, self.max_steps)
        self._send()

    def on_step(self, row: Mapping[str, object]) -> None:
        """Count the step; send a snapshot if ``interval`` passed."""
        self.step = int(row["step"]) + 1  # type: ignore[call-overload]
        if time.perf_counter() - self._sent >= self.interval:
            self._send()

    def on_evaluation(self, row: Mapping[str, object]) -> None:
        """Take the evaluation's first score (the column after ``epoch``) and send a snapshot."""
        self._score(row)
        self._send()

    def on_restore(self, result: SplitResult) -> None:
        """Continue from a checkpoint: its steps are done, its last evaluation is the score."""
        self.step = self.resumed = len(result.steps)
        if len(result.history):
            self._score(result.history.iloc[-1].to_dict())

    def _score(self, row: Mapping[str, object]) -> None:
        names = list(row)
        self.metric = names[names.index("epoch") + 1]
        self.value = float(row[self.metric])  # type: ignore[arg-type]

    def on_end(self, step: int) -> None:
        """Send the last snapshot (``step`` of ``step`` planned, done) and call ``finish``."""
        self.step = self.total = step
        self.done = True
        self._send()
        if self.finish is not None:
            self.finish()

    def snapshot(self) -> Progress:
        """Return where the run is now."""
        return Progress(
            self.step,
            max(self.total, self.step),
            self.epoch,
            self.num_epochs,
            self.training_bytes(),
            time.perf_counter() - (self.started or self._created),
            self.metric,
            self.value,
            self.done,
            self.resumed,
        )

    def _send(self) -> None:
        self._sent = time.perf_counter()
        self.sink(self.snapshot())


def _size(file: IO[str]) -> dict[str, int]:
    """Return tqdm's ``ncols`` and ``nrows`` for a terminal that reports no size, else nothing.

    A bare pseudo-terminal is 0x0, and tqdm hides a bar on a terminal of 0 rows.
    """
    try:
        size = os.get_terminal_size(file.fileno())
    except (OSError, ValueError, AttributeError):
        return {}
    return {"ncols": 100, "nrows": 24} if 0 in (size.columns, size.lines) else {}


class ProgressBar:
    """Draw `Progress` snapshots: a tqdm bar on a terminal, a plain line now and then elsewhere.

    On a terminal the bar shows steps done of planned, rate, elapsed time, ETA
    and the snapshot's `Progress.postfix`. Elsewhere (a file, a pipe, a
    ServerApp's log) it writes the same text as one line at most every
    ``line_interval`` seconds, and the run's last (``done``) snapshot at once.
    A ``done`` snapshot or `close` ends the bar (a later snapshot starts a new one).

    Parameters
    ----------
    file : IO[str] or None (default: None, ``sys.stderr``)
        Where to draw.
    line_interval : float (default: 2.0)
        Least seconds between two lines when ``file`` is not a terminal.
    tick : bool (default: False)
        Also redraw without new snapshots, from a thread: every second on a
        terminal, elsewhere the last snapshot, its elapsed time moved on, every
        ``heartbeat`` seconds, so that a long step does not look like a hang.
        Whoever ticks must `close` the bar, also on errors.
    heartbeat : float (default: 5.0)
        Seconds between two repeated lines when ``file`` is not a terminal.
    """

    def __init__(
        self,
        file: IO[str] | None = None,
        line_interval: float = 2.0,
        tick: bool = False,
        heartbeat: float = 5.0,
    ) -> None:
        self.file = file or sys.stderr
        self.terminal = bool(getattr(self.file, "isatty", lambda: False)())
        self.line_interval = line_interval
        self.tick = tick
        self.heartbeat = heartbeat
        self.last: Progress | None = None
        self._received_at = 0.0
        self._bar: tqdm | None = None
        self._written: Progress | None = None
        self._written_at = self._beat_at = float("-inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __call__(self, progress: Progress) -> None:
        """Show ``progress``; a ``done`` snapshot also closes the bar."""
        with self._lock:
            self.last, self._received_at = progress, time.monotonic()
            if self.terminal:
                self._draw_bar(progress)
            elif (
                progress.done
                or self._written is None
                or progress.training != self._written.training
                or self._received_at - self._written_at >= self.line_interval
            ):
                self._write_line(progress)
                self._written_at = self._received_at
            if self.tick and self._ticker is None and not progress.done:
                self._ticker = threading.Thread(target=self._tick, daemon=True)
                self._ticker.start()
        if progress.done:
            self.close()

    def write(self, text: str, file: IO[str] | None = None) -> None:
        """Print ``text`` (one or more lines) to ``file`` (default: the bar's), above the bar."""
        target = file or self.file
        with self._lock:
            if self._bar is not None:
                self._bar.write(text.rstrip("\n"), file=target)
            else:
                target.write(text if text.endswith("\n") else text + "\n")
                target.flush()

    def close(self) -> None:
        """Finish the bar (or write the last line); later snapshots start a new one."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self._bar is not None:
                self._bar.close()
            elif self.last is not None and self.last is not self._written:
                self._write_line(self.last)
            self._bar, self._ticker, self.last = None, None, None
            self._written, self._written_at, self._beat_at = None, float("-inf"), float("-inf")
            self._stop.clear()

    def _draw_bar(self, progress: Progress) -> None:
        if self._bar is not None and progress.training and self._bar.total is None:
            self._bar.close()  # training starts: a bar of its own, for its rate and ETA
            self._bar = None
        if self._bar is None:
            total = progress.total if progress.training else None
            self._bar = tqdm(
                total=total,
                initial=progress.resumed,
                unit="step",
                file=self.file,
                leave=progress.training,
                **_size(self.file),
            )
        self._bar.total = progress.total if progress.training else None
        self._bar.n = progress.step
        self._bar.set_postfix_str(progress.postfix(), refresh=False)
        self._bar.refresh()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                now = time.monotonic()
                if self._bar is not None:
                    self._bar.refresh()
                elif self.last is not None and now - self._beat_at >= self.heartbeat:
                    moved = self.last.elapsed + now - self._received_at
                    self._write_line(replace(self.last, elapsed=moved))
                    self._written = self.last

    def _write_line(self, progress: Progress) -> None:
        self.file.write(self.line(progress) + "\n")
        self.file.flush()
        self._written, self._beat_at = progress, time.monotonic()

    @staticmethod
    def line(progress: Progress) -> str:
        """Return ``progress`` as the one line written off a terminal."""
        elapsed = tqdm.format_interval(progress.elapsed)
        if not progress.training:
            return f"{elapsed} {progress.postfix()}"
        done = progress.step - progress.resumed
        rate = done / progress.elapsed if progress.elapsed > 0 else 0.0
        left = (progress.total - progress.step) / rate if rate > 0 else float("nan")
        eta = tqdm.format_interval(left) if left == left else "?"
        speed = f"{rate:.1f} step/s" if rate >= 1 or rate == 0 else f"{1 / rate:.1f} s/step"
        return (
            f"step {progress.step}/{progress.total} ({speed}, {elapsed} elapsed, ETA {eta}), "
            f"{progress.postfix()}"
        )
