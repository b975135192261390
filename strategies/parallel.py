"""`ParallelSplitLearning`: many clients per step, the server trains the top on their union."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, RecordDict

from flwr_split.server.fedavg import Upload, aggregate, screen, screen_gradients
from flwr_split.tasks import Optimization
from flwr_split.wire import (
    KEY_BOTTOM,
    KEY_BOTTOM_GRAD,
    MSG_STEP,
    ClientInfo,
    ProtocolError,
    Slice,
    StepOrder,
    read_tensors,
    require_record,
)
from strategies.base import SplitStrategy


class ParallelSplitLearning(SplitStrategy):
    """Parallel split learning: at each step every scheduled client sends a batch.

    The server concatenates the batches (in partition-id order), trains the top
    on the union with the mean loss, and returns to each client its slice of
    the cut-layer gradient. How the clients' bottoms stay in step depends on
    ``sync``:

    ``"every_step"``
        The server owns the bottom and its optimizer. Per step, two round trips:
        the forward request carries the current bottom weights; the backward
        request carries the cut-layer gradient and the client returns its
        bottom gradient. The server sums them and steps the bottom, so one step
        equals a centralized step of the unsplit model on the union batch.
    ``"every_epoch"``
        Each client trains its own bottom with its own optimizer; one round trip
        per step (the gradient of step t-1 rides with the request for step t),
        plus one per epoch in which clients return their bottoms for a FedAvg
        average (weighted by samples trained, in float64, uploads screened by
        `flwr_split.server.fedavg.screen`; or their coordinate-wise median or
        trimmed mean, ``aggregation``) that goes out with the next request.
    ``"never"``
        Like ``"every_epoch"`` without the averaging.

    Parameters are those of `SplitStrategy`.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.bottom_optimizer = Optimization(
            self.session.task.definition, self.session.optimizer, self.bottom.parameters()
        )
        self.pending: dict[int, tuple[Slice, RecordDict]] = {}
        self.trained: dict[int, int] = {}

    def resumable(self, within_epoch: bool) -> bool:
        """Under ``every_step`` after any step, under ``every_epoch`` after an epoch's FedAvg.

        Then every client's bottom is the server's (or about to be replaced by
        it) and no gradient is pending. A client's optimizer restarts with the
        server's weights anyway, but a task's LR schedule goes on where it was
        on the client, which the server does not see: ``every_epoch`` runs of a
        task with a scheduler, like ``never`` runs (the clients' bottoms never
        reach the server), cannot be resumed.
        """
        if self.pending or self.trained:
            return False
        if self.sync == "every_epoch":
            return not within_epoch and self.session.task.definition.scheduler is None
        return self.sync == "every_step"

    def state_dict(self) -> dict[str, Any]:
        """Return the server's state (`SplitServer.state_dict`) and the bottom's optimizer."""
        return {**super().state_dict(), "bottom_optimizer": self.bottom_optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict`."""
        super().load_state_dict(state)
        self.bottom_optimizer.load_state_dict(state["bottom_optimizer"])

    def train_step(self, step: int, epoch: int, counts: np.ndarray, offsets: np.ndarray) -> None:
        """Run one step under the configured sync policy."""
        slices = {
            c.node_id: (epoch, int(offsets[i]), int(counts[i]))
            for i, c in enumerate(self.clients)
            if counts[i] > 0
        }
        if self.sync == "every_step":
            self._synchronous_step(step, slices)
        else:
            self._local_step(step, slices)

    # ------------------------------------------------ every_step (2 round trips)
    def _synchronous_step(self, step: int, slices: dict[int, Slice]) -> None:
        active = [c for c in self.clients if c.node_id in slices]
        requests = [(c, self._order(step, fwd=slices[c.node_id])) for c in active]
        batches = self._forward(step, requests, slices)
        if not batches:
            return
        grads = self.top_step(step, batches)
        backward = [
            (
                b.client,
                self._order(
                    step,
                    pending=(slices[b.client.node_id], grads[b.client.node_id]),
                    bwd_mode="return",
                ),
            )
            for b in batches
            if b.client.node_id in grads  # not rejected by top_step
        ]
        contents = self._deliver(step, "train", backward)
        expected = {name: p.detach() for name, p in self.bottom.named_parameters()}
        uploads = []
        for client, _ in backward:
            if client.node_id not in contents:
                continue
            try:
                record = require_record(contents[client.node_id], KEY_BOTTOM_GRAD, ArrayRecord)
                tensors = read_tensors(record, expected, "bottom gradient")
                uploads.append(Upload(client, slices[client.node_id][2], tensors))
            except ProtocolError as exc:
                self.messenger.reject(step, client, str(exc))
        accepted, rejected = screen_gradients(uploads, self.trainer.sent_norms)
        for client, reason in rejected:
            self.messenger.reject(step, client, reason)
        total = {name: torch.zeros_like(p) for name, p in expected.items()}
        for upload in accepted:
            for name, grad in upload.tensors.items():
                total[name] += grad
        if accepted:
            self.bottom_optimizer.zero_grad(set_to_none=False)
            for name, param in self.bottom.named_parameters():
                param.grad = total[name]
            self.bottom_optimizer.step()
            self.server_bottom.version += 1

    # ------------------------------ every_epoch / never (1 round trip per step)
    def _local_step(self, step: int, slices: dict[int, Slice]) -> None:
        """Message only this step's clients; each carries its pending gradient, if any.

        A client that sits a step out keeps its pending gradient until its next
        message (its next step, the epoch's sync or `finish`): nothing changes
        its bottom in between, so applying it later gives the same weights and
        saves a message per client whenever the participants change.
        """
        targets = [c for c in self.clients if c.node_id in slices]
        requests = [
            (c, self._order(step, fwd=slices[c.node_id], pending=self.pending.get(c.node_id)))
            for c in targets
        ]
        batches = self._forward(step, requests, slices)
        if batches:
            grads = self.top_step(step, batches)
            self.pending.update(
                {node_id: (slices[node_id], records) for node_id, records in grads.items()}
            )

    def end_epoch(self, step: int, epoch: int) -> None:
        """Under ``every_epoch``: apply pending gradients, collect bottoms, FedAvg them."""
        if self.sync != "every_epoch":
            return
        targets = [
            c for c in self.clients if c.node_id in self.pending or self.trained.get(c.node_id)
        ]
        requests = [
            (c, self._order(step, pending=self.pending.get(c.node_id), return_weights=True))
            for c in targets
        ]
        contents = self._deliver(step, "sync", requests)
        expected = self.bottom.state_dict()
        uploads = []
        for client, _ in requests:
            weight = self.trained.get(client.node_id, 0)
            if client.node_id not in contents or weight == 0:
                continue
            try:
                record = require_record(contents[client.node_id], KEY_BOTTOM, ArrayRecord)
                uploads.append(
                    Upload(client, weight, read_tensors(record, expected, "bottom weights"))
                )
            except ProtocolError as exc:
                self.messenger.reject(step, client, str(exc))
        accepted, rejected = screen(uploads, expected)
        for client, reason in rejected:
            self.messenger.reject(step, client, reason)
        if accepted:
            combined = aggregate(accepted, expected, self.aggregation, self.trim_fraction)
            self.bottom.load_state_dict(combined)
            self.server_bottom.version += 1
        self.trained.clear()

    def finish(self, step: int) -> None:
        """Deliver the gradients still pending so every client ends up to date."""
        if self.pending:
            requests = [
                (c, self._order(step, pending=self.pending[c.node_id]))
                for c in self.clients
                if c.node_id in self.pending
            ]
            self._deliver(step, "train", requests)

    # ---------------------------------------------------------------- helpers
    def _order(
        self,
        step: int,
        *,
        fwd: Slice | None = None,
        pending: tuple[Slice, RecordDict] | None = None,
        bwd_mode: str = "apply",
        return_weights: bool = False,
    ) -> tuple[StepOrder, RecordDict | None]:
        bwd, records = pending if pending is not None else (None, None)
        f_epoch, f_offset, f_count = fwd or (0, 0, 0)
        b_epoch, b_offset, b_count = bwd or (0, 0, 0)
        order = StepOrder(
            step=step,
            version=self.server_bottom.version,
            fwd_epoch=f_epoch,
            fwd_offset=f_offset,
            fwd_count=f_count,
            bwd_epoch=b_epoch,
            bwd_offset=b_offset,
            bwd_count=b_count,
            bwd_mode=bwd_mode,
            return_weights=return_weights,
        )
        return order, records

    def _deliver(
        self,
        step: int,
        phase: str,
        requests: list[tuple[ClientInfo, tuple[StepOrder, RecordDict | None]]],
    ) -> dict[int, RecordDict]:
        """Send step orders; book the backward slices that clients acknowledged."""
        messages = [
            (c, self.messenger.new_message(c, MSG_STEP, order, records))
            for c, (order, records) in requests
        ]
        contents = self.messenger.send(step, phase, messages)
        for client, (order, _) in requests:
            if client.node_id in contents and order.bwd_count and order.bwd_mode == "apply":
                self.trained[client.node_id] = self.trained.get(client.node_id, 0) + order.bwd_count
        delivered = {client.node_id for client, _ in requests}
        self.pending = {k: v for k, v in self.pending.items() if k not in delivered}
        return contents

    def _forward(self, step: int, requests: list, slices: dict[int, Slice]) -> list:
        contents = self._deliver(step, "train", requests)
        return [
            batch
            for client, (order, _) in requests
            if order.fwd_count
            and client.node_id in contents
            and (batch := self.reader.read(step, client, contents[client.node_id], order.fwd_count))
            is not None
        ]
