"""`Evaluator`: the clients' test shards through their bottoms and the server's top."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from flwr.app import Message, MetricRecord, RecordDict
from torch import nn

from flwr_split.common.devices import CPU
from flwr_split.server.batches import CutBatch, CutReader
from flwr_split.server.callbacks import EvaluateFn
from flwr_split.tasks.objectives import LossFn, MetricFn
from flwr_split.wire import ClientInfo

NON_FINITE_OUTPUTS = "test activations give NaN or inf logits"
"""Rejection reason when a client's test activations make the top's outputs non-finite."""


class Evaluator:
    """Ask clients for the activations of their test shards and score the top on them.

    Parameters
    ----------
    reader : CutReader
        Reads the replies (and rejects bad ones).
    loss_fn : LossFn
        The task's loss (reported as ``loss``).
    metrics : Mapping[str, MetricFn]
        The task's metrics, each reported under its name.
    device : torch.device (default: CPU)
        Where the top computes.
    """

    def __init__(
        self,
        reader: CutReader,
        loss_fn: LossFn,
        metrics: Mapping[str, MetricFn],
        device: torch.device = CPU,
    ) -> None:
        self.reader = reader
        self.device = device
        self.messenger = reader.messenger
        self.loss_fn = loss_fn
        self.metrics = dict(metrics)
        self.evaluate_fn: EvaluateFn | None = None
        """Centralized evaluation of the run, if any (`centralized`)."""
        self.server_metrics: dict[int, MetricRecord] = {}
        """What ``evaluate_fn`` returned, by step."""

    def run(
        self, step: int, top: nn.Module, requests: list[tuple[ClientInfo, Message]]
    ) -> tuple[dict[str, float], int]:
        """Send the evaluation requests; return the metrics and the samples they cover."""
        contents = self.messenger.send(step, "eval", requests)
        batches = [
            batch
            for client, _ in requests
            if client.node_id in contents
            and (
                batch := self.reader.read(step, client, contents[client.node_id], client.test_count)
            )
            is not None
        ]
        return self.score(step, top, batches), sum(len(b.labels) for b in batches)

    def evaluate(
        self,
        step: int,
        top: nn.Module,
        requests: list[tuple[ClientInfo, Message]],
        arrays: Callable[[], RecordDict],
        wall_s: float,
    ) -> tuple[dict[str, float], dict[str, float]]:
        """Run the requests and the centralized evaluation; return the scores and the books.

        The books are the run's training bytes so far, the evaluated samples,
        the rejections so far, and the wall and simulated time.
        """
        scores, samples = self.run(step, top, requests)
        books = {
            **self.messenger.traffic.training_columns(),
            "eval_samples": samples,
            "rejected": len(self.messenger.rejected),
            "wall_s": wall_s,
            "sim_time_s": self.messenger.clock.seconds,
        }
        return {**scores, **self.centralized(step, arrays)}, books

    def centralized(self, step: int, arrays: Callable[[], RecordDict]) -> dict[str, float]:
        """Run ``evaluate_fn(step, arrays())`` if set; return its metrics as ``server_*`` scores."""
        if self.evaluate_fn is None:
            return {}
        metrics = self.evaluate_fn(step, arrays())
        if metrics is None:
            return {}
        self.server_metrics[step] = MetricRecord(dict(metrics))
        return {f"server_{name}": float(value) for name, value in metrics.items()}

    def score(self, step: int, top: nn.Module, batches: list[CutBatch]) -> dict[str, float]:
        """Metrics and loss of ``top`` over ``batches`` (NaN if none).

        A client whose activations give NaN or inf outputs is rejected and its
        rows are left out, so it cannot turn everybody's metrics into NaN.
        """
        nan = {**dict.fromkeys(self.metrics, float("nan")), "loss": float("nan")}
        if not batches:
            return nan
        with torch.no_grad():
            outputs = top(torch.cat([b.acts for b in batches]).to(self.device))
        labels = torch.cat([b.labels for b in batches]).to(self.device)
        keep = torch.isfinite(outputs.reshape(len(outputs), -1)).all(1)
        start = 0
        for batch in batches:
            rows = slice(start, start + len(batch.labels))
            start = rows.stop
            if not bool(keep[rows].all()):
                keep[rows] = False
                self.messenger.reject(step, batch.client, NON_FINITE_OUTPUTS)
        if not bool(keep.any()):
            return nan
        outputs, labels = outputs[keep], labels[keep]
        scores = {name: float(metric(outputs, labels)) for name, metric in self.metrics.items()}
        return {**scores, "loss": float(self.loss_fn(outputs, labels))}
