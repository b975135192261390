"""`RunHistory`: the rows a run produces, one per training step and one per evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from flwr_split.sampling import batch_deviation, class_shares
from flwr_split.server.messenger import Books
from flwr_split.server.roster import Roster

DEVIATION_COLUMNS = {
    "batch_deviation": "deviation_l1",
    "batch_deviation_l2": "deviation_l2",
    "batch_deviation_max": "deviation_max",
    "mean_batch": "batch",
}
"""History column: the step-row key it averages since the previous evaluation."""


class RunHistory:
    """Step rows, evaluation rows and the running training loss of one run.

    Parameters
    ----------
    roster : Roster
        Holds, once the clients are known, the class distribution of all
        their training data together: the reference of the batch deviation
        (none for regression tasks, whose rows have no deviation).
    """

    def __init__(self, roster: Roster) -> None:
        self.roster = roster
        self.steps: list[dict[str, float | int]] = []
        self.evaluations: list[dict[str, object]] = []
        self.train_losses: list[float] = []
        self.batch_row: dict[str, float | int] = {}
        """Union batch and batch deviation of the running step (`note_batch`)."""
        self._eval_from = 0

    def note_batch(self, labels: torch.Tensor, active: int) -> None:
        """Note the union batch of this step: size, active clients and batch deviation."""
        row: dict[str, float | int] = {"batch": len(labels), "active_clients": active}
        pooled = self.roster.pooled_shares
        if pooled is not None:
            shares = class_shares(labels.numpy(), len(pooled))
            deviation = batch_deviation(shares, pooled)
            row.update({f"deviation_{name}": value for name, value in deviation.items()})
        self.batch_row = row

    def add_step(
        self,
        step: int,
        epoch: int,
        counts: np.ndarray,
        before: Books,
        after: Books,
        wall_s: float,
    ) -> dict[str, float | int]:
        """Append and return a training step's row.

        It holds the planned clients and samples, the union batch noted during
        the step, and what the books moved by between ``before`` and ``after``:
        messages, exchange, server, client compute and simulated seconds.
        """
        exchange_s = after.exchange_wall - before.exchange_wall
        row = {
            "step": step,
            "epoch": epoch,
            "clients": int(np.count_nonzero(counts)),
            "samples": int(counts.sum()),
            **self.batch_row,
            "messages": after.messages_sent - before.messages_sent,
            "wall_s": wall_s,
            "exchange_s": exchange_s,
            "server_s": wall_s - exchange_s,
            "client_compute_s": after.client_compute - before.client_compute,
            "sim_time_s": after.sim_seconds - before.sim_seconds,
        }
        self.batch_row = {}
        self.steps.append(row)
        return row

    def add_evaluation(
        self, scores: dict[str, object], books: dict[str, object], config: dict[str, object]
    ) -> dict[str, object]:
        """Append and return an evaluation row.

        The row holds ``scores`` (step, epoch, metrics, loss), the mean training
        loss since the previous row, ``books`` (bytes, samples, times), the mean
        batch deviation and union batch since the previous row, and ``config``.
        """
        losses = self.train_losses
        train_loss = float(np.mean(losses)) if losses else float("nan")
        row = {**scores, "train_loss": train_loss, **books}
        recent = self.steps[self._eval_from :]
        for name, key in DEVIATION_COLUMNS.items():
            values = [r[key] for r in recent if key in r]  # absent if no client answered
            row[name] = float(np.mean(values)) if values else float("nan")
        row.update(config)
        self.train_losses.clear()
        self._eval_from = len(self.steps)
        self.evaluations.append(row)
        return row

    def state_dict(self) -> dict[str, object]:
        """Return the rows and the running losses so far (for a checkpoint, between steps)."""
        return {
            "steps": self.steps,
            "evaluations": self.evaluations,
            "train_losses": self.train_losses,
            "eval_from": self._eval_from,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict`."""
        self.steps = list(state["steps"])
        self.evaluations = list(state["evaluations"])
        self.train_losses = [float(loss) for loss in state["train_losses"]]
        self._eval_from = int(state["eval_from"])
        self.batch_row = {}

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Return ``(evaluations, steps)`` as DataFrames."""
        return pd.DataFrame(self.evaluations), pd.DataFrame(self.steps)
