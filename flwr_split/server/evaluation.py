"""`Evaluator`: the clients' test shards through their bottoms and the server's top."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from flwr.app import Message
from torch import nn

from flwr_split.codecs import Codec
from flwr_split.server.batches import CutBatch, read_cut_batch
from flwr_split.server.messenger import Messenger
from flwr_split.server.roster import Roster
from flwr_split.tasks.objectives import LossFn, MetricFn
from flwr_split.wire import ClientInfo, ProtocolError

NON_FINITE_OUTPUTS = "test activations give NaN or inf outputs"
"""Rejection reason when a client's test activations make the top's outputs non-finite."""


class Evaluator:
    """Ask clients for the activations of their test shards and score the top on them.

    Parameters
    ----------
    messenger : Messenger
        Sends the requests and books their traffic and rejections.
    uplink : Codec
        Codec of the activations.
    roster : Roster
        Knows the per-sample shape of the activations (after the hello) and
        the kind of targets.
    loss_fn : LossFn
        The task's loss (reported as ``loss``).
    metrics : Mapping[str, MetricFn]
        The task's metrics, each reported under its name.
    """

    def __init__(
        self,
        messenger: Messenger,
        uplink: Codec,
        roster: Roster,
        loss_fn: LossFn,
        metrics: Mapping[str, MetricFn],
    ) -> None:
        self.messenger = messenger
        self.uplink = uplink
        self.roster = roster
        self.loss_fn = loss_fn
        self.metrics = dict(metrics)

    def run(
        self, step: int, top: nn.Module, requests: list[tuple[ClientInfo, Message]]
    ) -> tuple[dict[str, float], int]:
        """Send the evaluation requests; return the metrics and the samples they cover."""
        contents = self.messenger.send(step, "eval", requests)
        batches = []
        for client, _ in requests:
            if client.node_id not in contents:
                continue
            assert self.roster.cut_shape is not None, "the hello precedes any evaluation"
            shape = (client.test_count, *self.roster.cut_shape)
            try:
                content = contents[client.node_id]
                batches.append(
                    read_cut_batch(self.uplink, client, content, shape, self.roster.target)
                )
            except ProtocolError as exc:
                self.messenger.reject(step, client, str(exc))
        return self.score(step, top, batches), sum(len(b.labels) for b in batches)

    def score(self, step: int, top: nn.Module, batches: list[CutBatch]) -> dict[str, float]:
        """Metrics and loss of ``top`` over ``batches`` (NaN if none).

        A client whose activations give NaN or inf outputs is rejected and its
        rows are left out, so it cannot turn everybody's metrics into NaN.
        """
        nan = {**dict.fromkeys(self.metrics, float("nan")), "loss": float("nan")}
        if not batches:
            return nan
        with torch.no_grad():
            outputs = top(torch.cat([b.acts for b in batches]))
        labels = torch.cat([b.labels for b in batches])
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
