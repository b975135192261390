"""`Roster`: what the server learns from the clients' hello replies instead of reading data.

The first client's input shape and dtype fix the cut-layer shape (the server's
bottom runs on one zero sample of it); a client that reports other inputs is
rejected. The clients' per-class training counts, summed, give the pooled
class shares that the batch deviation is measured against.
"""

from __future__ import annotations

import numpy as np
from flwr.app import RecordDict

from flwr_split.sampling import shares_of_counts
from flwr_split.tasks import TaskConfig, cut_shape
from flwr_split.wire import ClientInfo, ProtocolError, read_client_info

BOTTOM_FAILURES = (RuntimeError, ValueError, TypeError, IndexError)
"""What the bottom may raise on an input shape or dtype it cannot take."""


class Roster:
    """Reads hello replies for one task and keeps what the run needs from them.

    Parameters
    ----------
    task : TaskConfig
        The task; its bottom gives the cut shape, its target the class count.

    Attributes
    ----------
    target : Classes or Values
        The task's target kind.
    input_spec : tuple[tuple[int, ...], str] or None
        Shape and dtype of one input sample (from the first good reply).
    cut_shape : tuple[int, ...] or None
        Per-sample shape of the cut-layer activations.
    pooled_shares : np.ndarray or None
        Class shares of all admitted clients' training data (classification).
    """

    def __init__(self, task: TaskConfig) -> None:
        self.task = task
        self.target = task.definition.target
        self.num_classes = task.definition.num_classes
        self.input_spec: tuple[tuple[int, ...], str] | None = None
        self.cut_shape: tuple[int, ...] | None = None
        self.pooled_shares: np.ndarray | None = None

    def read(self, node_id: int, content: RecordDict) -> ClientInfo:
        """Read a hello reply; raise `ProtocolError` if it is bad or disagrees on the inputs."""
        client = read_client_info(node_id, content, self.num_classes)
        spec = (client.input_shape, client.input_dtype)
        if self.input_spec is None:
            try:
                self.cut_shape = cut_shape(self.task, *spec)
            except BOTTOM_FAILURES as exc:
                raise ProtocolError(
                    f"the bottom cannot take {spec[1]} inputs of shape {spec[0]}: {exc}"
                ) from exc
            self.input_spec = spec
        elif spec != self.input_spec:
            raise ProtocolError(
                f"inputs {spec[1]}{spec[0]} differ from the first client's "
                f"{self.input_spec[1]}{self.input_spec[0]}"
            )
        return client

    def admit(self, clients: list[ClientInfo]) -> None:
        """Note the clients of the run: their pooled class shares."""
        if self.num_classes is None:
            return
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for client in clients:
            counts += client.class_counts
        self.pooled_shares = shares_of_counts(counts)
