"""What a split-learning run returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from flwr.app import ArrayRecord, MetricRecord


@dataclass
class SplitResult:
    """Metric history, traffic and trained model halves of one run.

    Parameters
    ----------
    history : pd.DataFrame
        One row per evaluation: step, epoch, test accuracy and loss, mean
        training loss since the previous row, cumulative training bytes per
        direction (``bytes_up``, ``bytes_down``) and of activations and
        gradients, evaluated samples, rejected replies so far, wall and
        simulated time, the mean batch deviation (L1, L2, max) and union batch
        since the previous row, and the run's configuration columns
        (``num_clients``, ``k_effective`` = clients holding training data, ...).
    traffic : pd.DataFrame
        One row per (message, kind): step, phase, partition id, direction,
        kind and bytes (see `flwr_split.metrics.traffic.TrafficLog`).
    rejected : list[tuple[int, int, str]]
        ``(step, partition_id, reason)`` for every reply the server dropped.
    steps : pd.DataFrame
        One row per training step: participating clients and planned samples;
        the union batch the server received (``batch``, ``active_clients``)
        and its batch deviation (``deviation_l1``, ``deviation_l2``,
        ``deviation_max``); the messages sent; wall seconds, of which
        exchange (push to last reply) and server time; the compute seconds
        clients reported, summed; simulated seconds.
    bottom : ArrayRecord
        The server's bottom weights at the end: the clients' common bottom
        under ``every_step`` and the FedAvg of their bottoms under
        ``every_epoch`` (what the final evaluation ran); under ``never`` each
        client keeps its own bottom and this is the initial one.
    top : ArrayRecord
        The trained top.
    evaluate_metrics_serverapp : dict[int, MetricRecord]
        What the strategy's ``evaluate_fn`` returned, by step (as Flower's
        ``Result.evaluate_metrics_serverapp``, with steps for rounds).
    """

    history: pd.DataFrame
    traffic: pd.DataFrame
    rejected: list[tuple[int, int, str]] = field(default_factory=list)
    steps: pd.DataFrame = field(default_factory=pd.DataFrame)
    bottom: ArrayRecord = field(default_factory=ArrayRecord)
    top: ArrayRecord = field(default_factory=ArrayRecord)
    evaluate_metrics_serverapp: dict[int, MetricRecord] = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float:
        """Test accuracy of the last evaluation."""
        return float(self.history["accuracy"].iloc[-1])
