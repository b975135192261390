"""`TopTrainer`: the server's half of the model, trained on the union of the clients' batches."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from flwr.app import RecordDict
from torch import nn

from flwr_split.codecs import Codec, LazySeedContext
from flwr_split.codecs.base import all_finite
from flwr_split.common.devices import CPU
from flwr_split.common.seeds import codec_seed
from flwr_split.server.batches import CutBatch
from flwr_split.server.screens import bounded, finite_median, float64_norm
from flwr_split.tasks import Optimization
from flwr_split.tasks.objectives import LossFn
from flwr_split.wire import KEY_GRAD, ClientInfo, put_encoded
from flwr_split.wire.limits import ACTIVATION_RMS_RATIO

NON_FINITE = "activations give a NaN or inf loss or gradient at the server"
"""Rejection reason when a client's activations make the top's backward non-finite."""

Reject = Callable[[int, ClientInfo, str], None]
"""``reject(step, client, reason)``: drop a client from a step."""


@dataclass
class TopUpdate:
    """One applied step of the top: the batches it used, their labels and the loss."""

    batches: list[CutBatch]
    labels: torch.Tensor
    loss: float
    cut_grad: torch.Tensor
    """d(loss)/d(activations) of the union, rows in the order of ``batches``."""


class TopTrainer:
    """Forward and backward of the top on a union batch, one optimizer step, gradients back.

    The loss is the mean over the union, so each client's gradient is its slice
    of d(loss)/d(activations) of the union. When the loss or a gradient comes
    out NaN or inf (finite activations far too large, say), nothing is applied:
    each client's batch is tried alone, those that are not finite on their own
    are rejected, and the step runs on the others.

    Parameters
    ----------
    top : nn.Module
        The server's half of the model.
    optimization : Optimization
        Optimizer (and LR scheduler) over ``top``'s parameters.
    downlink : Codec
        Codec of the cut-layer gradients sent back.
    loss_fn : LossFn
        ``loss_fn(outputs, targets)``, a mean over the batch.
    seed : int
        Run seed; the downlink codec of client ``k`` at step ``t`` is seeded
        from ``(seed + 1, t, k)``.
    device : torch.device (default: CPU)
        Where the top computes (``top`` must be there already); activations
        move there after decoding, gradients back to the CPU for encoding.
    """

    def __init__(
        self,
        top: nn.Module,
        optimization: Optimization,
        downlink: Codec,
        loss_fn: LossFn,
        seed: int,
        device: torch.device = CPU,
    ) -> None:
        self.top = top
        self.device = device
        self.optimization = optimization
        self.downlink = downlink
        self.loss_fn = loss_fn
        self.seed = seed
        self.sent_norms: dict[int, float] = {}
        """Float64 norm of each client's cut-layer gradient slice last encoded, by node id
        (the reference of `flwr_split.server.fedavg.screen_gradients`)."""

    def train(self, step: int, batches: list[CutBatch], reject: Reject) -> TopUpdate | None:
        """Apply one optimizer step on the union of ``batches``; None if none was usable."""
        batches = self._screen_magnitudes(step, batches, reject)
        if not batches:
            return None
        acts, labels, loss = self._backward(batches)
        if not self._finite(acts, loss):
            batches = [b for b in batches if self._finite_alone(step, b, reject)]
            if batches:
                acts, labels, loss = self._backward(batches)
                if not self._finite(acts, loss):
                    for batch in batches:
                        reject(step, batch.client, NON_FINITE + " (with the other clients)")
                    batches = []
            if not batches:
                return None
        self.optimization.step()
        return TopUpdate(batches, labels, float(loss.detach()), acts.grad.cpu())

    def state_dict(self) -> dict[str, Any]:
        """Return the top's weights and its optimizer's (and scheduler's) state."""
        return {"top": self.top.state_dict(), "optimization": self.optimization.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict`."""
        self.top.load_state_dict(state["top"])
        self.optimization.load_state_dict(state["optimization"])

    def encode_gradients(self, step: int, update: TopUpdate) -> dict[int, RecordDict]:
        """Encode each client's slice of the cut-layer gradient; records by node id."""
        sizes = [len(b.labels) for b in update.batches]
        grads: dict[int, RecordDict] = {}
        self.sent_norms = {}
        for batch, grad in zip(update.batches, torch.split(update.cut_grad, sizes), strict=True):
            self.sent_norms[batch.client.node_id] = float64_norm(grad)
            ctx = LazySeedContext(
                partial(codec_seed, self.seed + 1, step, batch.client.partition_id)
            )
            records = RecordDict()
            put_encoded(records, KEY_GRAD, self.downlink.encode(grad, ctx))
            grads[batch.client.node_id] = records
        return grads

    @staticmethod
    def _screen_magnitudes(step: int, batches: list[CutBatch], reject: Reject) -> list[CutBatch]:
        """Reject activations whose root mean square is far above the step's median.

        Finite but huge activations (1e30, say) pass every check of the reply
        and would make the top's weights huge, so that every client's next
        step fails. Honest clients' activations come from copies of one
        bottom, so their root mean squares stay close (measured beside
        `ACTIVATION_RMS_RATIO`). Two clients cannot be told apart this way
        (the median is their mean).
        """
        rms = [float64_norm(b.acts) / math.sqrt(max(b.acts.numel(), 1)) for b in batches]
        accepted, rejected = bounded(
            batches, rms, finite_median(rms), ACTIVATION_RMS_RATIO, "activations root mean square"
        )
        for client, reason in rejected:
            reject(step, client, reason)
        return accepted

    def _backward(self, batches: list[CutBatch]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward and backward of the top on ``batches`` (no step); ``(acts, labels, loss)``."""
        self.optimization.zero_grad()
        acts = torch.cat([b.acts for b in batches]).to(self.device).requires_grad_(True)
        labels = torch.cat([b.labels for b in batches])
        loss = self.loss_fn(self.top(acts), labels.to(self.device))
        loss.backward()
        return acts, labels, loss

    def _finite(self, acts: torch.Tensor, loss: torch.Tensor) -> bool:
        """Whether the loss, the cut-layer gradient and every top gradient are finite."""
        grads = [acts.grad, *(p.grad for p in self.top.parameters() if p.grad is not None)]
        return all_finite(loss) and all(all_finite(g) for g in grads)

    def _finite_alone(self, step: int, batch: CutBatch, reject: Reject) -> bool:
        """Run the top backward on ``batch`` alone; reject its client if it is not finite."""
        acts, _, loss = self._backward([batch])
        if self._finite(acts, loss):
            return True
        reject(step, batch.client, NON_FINITE)
        return False
