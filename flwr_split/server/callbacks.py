"""`SplitCallback`: what a run tells its caller as it goes, one hook per kind of event."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from flwr.app import MetricRecord, RecordDict

from flwr_split.server.result import SplitResult

logger = logging.getLogger("flwr").getChild(__name__)

EvaluateFn = Callable[[int, RecordDict], MetricRecord | Mapping[str, float] | None]
"""Centralized evaluation: ``evaluate_fn(step, arrays)``, arrays holding "bottom" and "top"."""


class SplitCallback:
    """Hooks `SplitStrategy.start` calls during a run; override the ones you need.

    Each hook gets the row the run has just added to its tables (the same
    dict that ends up in `SplitResult.steps` or `SplitResult.history`), so a
    callback can stream rows to disk, drive a progress bar or stop nothing:
    hooks must not modify the row.
    """

    def on_start(self) -> None:
        """Take note that the run starts (before it waits for its nodes)."""

    def on_epoch_start(self, epoch: int, steps: int) -> None:
        """Take note that ``epoch`` starts with ``steps`` planned training steps."""

    def on_step(self, row: Mapping[str, object]) -> None:
        """Take the row of `SplitResult.steps` that a training step has just added."""

    def on_evaluation(self, row: Mapping[str, object]) -> None:
        """Take the row of `SplitResult.history` that an evaluation has just added."""

    def on_epoch_end(self, epoch: int, step: int) -> None:
        """Take note that ``epoch`` ended (its last step and its sync are done) at ``step``."""

    def on_end(self, step: int) -> None:
        """Take note that the run ended after ``step`` steps and its final evaluation."""

    def on_restore(self, result: SplitResult) -> None:
        """Take the tables of the checkpoint a run resumes from, before its next step.

        ``result`` holds the history, steps and traffic up to the checkpoint
        (rows a killed run wrote after it are not there: the run makes them again).
        """


class ProgressLog(SplitCallback):
    """Log one line per evaluation: step, epoch, scores, training bytes and wall time."""

    def on_evaluation(self, row: Mapping[str, object]) -> None:
        """Log the row's step, epoch, scores (up to ``train_loss``), bytes and wall time."""
        names = list(row)
        scores = names[names.index("epoch") + 1 : names.index("train_loss")]
        logger.info(
            "step %d epoch %d: %s up %.2f MB down %.2f MB (%.1f s)",
            row["step"],
            row["epoch"],
            " ".join(f"{name} {row[name]:.4f}" for name in scores),
            float(row["bytes_up"]) / 1e6,  # type: ignore[arg-type]
            float(row["bytes_down"]) / 1e6,  # type: ignore[arg-type]
            row["wall_s"],
        )
