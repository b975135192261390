"""A bare SL step on Flower: split learning with nothing but the messages.

`bench_step_time` runs it beside the library's step as the lower bound of a
split-learning step on Flower Messages. It trains the same models with the
same optimizers on digits, with the library's message pattern: one round
trip per client and step, carrying the gradient of step t - 1 down and the
activations (and labels) of step t up as ArrayRecords. What it leaves out is
everything the library adds to that pattern:

- Each client keeps its bottom, optimizer and autograd graph in this process's
  memory. A SuperNode keeps nothing between messages, so deployed, this state
  would be lost.
- No payload is checked, encoded, screened or sized, and nothing is saved.
  Every reply is trusted. Arrays go through the library's own `to_array` and
  `from_array`, which cost less than Flower's ``Array(ndarray)`` and
  ``Array.numpy()`` (``np.save``/``np.load``).

Its time above the `cut` competitor (the same compute in plain PyTorch) is what
Flower's messages and the least glue of SL cost per client and step.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from torch import nn

from flwr_split.server.nodes import exchange
from flwr_split.tasks import TaskConfig, build_model, load_task_data, node_partition
from flwr_split.testing.inprocess import InProcessGrid
from flwr_split.wire.arrays import from_array, to_array

RECORD = "sl"
ACTION = "train.bare"


class BareClient:
    """One client's bottom, optimizer, training data and the graph of its last forward."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int, lr: float, momentum: float):
        self.bottom, _ = build_model(TaskConfig())
        self.optimizer = torch.optim.SGD(self.bottom.parameters(), lr, momentum)
        self.x, self.y, self.batch = x, y, batch
        self.rng = np.random.default_rng(len(y))
        """Draws each step's batch (seeded by the share's size: reproducible)."""
        self.acts: torch.Tensor | None = None

    def step(self, grad: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Back-propagate ``grad`` into the last forward (if any), step, run the next forward."""
        if grad is not None and self.acts is not None:
            self.acts.backward(torch.from_numpy(grad))
            self.optimizer.step()
            self.optimizer.zero_grad()
        idx = self.rng.choice(len(self.y), self.batch, replace=False)
        self.acts = self.bottom(torch.from_numpy(self.x[idx]))
        return self.acts.detach().numpy(), self.y[idx]


def bare_client_app(clients: int, batch: int, lr: float, momentum: float) -> ClientApp:
    """Return a ClientApp whose nodes each train a bottom on their share of digits."""
    train, _ = load_task_data(TaskConfig())
    states: dict[int, BareClient] = {}
    bare = ClientApp()

    @bare.train("bare")
    def step(message: Message, context: Context) -> Message:
        if context.node_id not in states:
            part, _ = node_partition(context)
            rows = slice(part, None, clients)
            states[context.node_id] = BareClient(train.x[rows], train.y[rows], batch, lr, momentum)
        record = message.content[RECORD]
        grad = from_array(record["grad"]) if "grad" in record else None
        acts, labels = states[context.node_id].step(grad)
        reply = ArrayRecord({"acts": to_array(acts), "labels": to_array(labels)})
        return Message(RecordDict({RECORD: reply}), reply_to=message)

    return bare


class BareSplit:
    """The server side: the top on the union of the replies, one SGD step, gradients down.

    Parameters
    ----------
    clients : int
        Number of virtual clients (nodes of an `InProcessGrid`), all in every step.
    batch : int
        Samples per client and step.
    lr, momentum : float
        SGD settings of every bottom and of the top.
    """

    def __init__(self, clients: int, batch: int, lr: float, momentum: float):
        self.grid = InProcessGrid(bare_client_app(clients, batch, lr, momentum), clients)
        _, self.top = build_model(TaskConfig())
        self.optimizer = torch.optim.SGD(self.top.parameters(), lr, momentum)
        self.grads: dict[int, np.ndarray] = {}

    def step(self, _rng: np.random.Generator | None = None) -> float:
        """Run one SL step: a round trip per client, the top's forward, backward and step.

        Returns the step's training loss (the top's, on the union of the replies).
        """
        messages = [
            Message(RecordDict({RECORD: self._down(node)}), node, ACTION)
            for node in self.grid.get_node_ids()
        ]
        replies = exchange(self.grid, messages, timeout=60)
        nodes = list(replies)
        records = [replies[node].content[RECORD] for node in nodes]
        leaves = [torch.from_numpy(from_array(r["acts"])).requires_grad_() for r in records]
        labels = torch.from_numpy(np.concatenate([from_array(r["labels"]) for r in records]))
        loss = nn.functional.cross_entropy(self.top(torch.cat(leaves)), labels.long())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()
        self.grads = {node: leaf.grad.numpy() for node, leaf in zip(nodes, leaves, strict=True)}
        return loss.item()

    def _down(self, node: int) -> ArrayRecord:
        grad = self.grads.get(node)
        return ArrayRecord({} if grad is None else {"grad": to_array(grad)})
