"""Optimizers of both halves, and their state as Flower ArrayRecords."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from flwr.app import ArrayRecord

from flwr_split.wire_arrays import from_array, to_array

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class OptimizerConfig:
    """Optimizer used for the server's top and the clients' bottoms.

    Parameters
    ----------
    name : str (default: "sgd")
        ``"sgd"`` or ``"adam"``.
    lr : float (default: 0.05)
        Learning rate.
    momentum : float (default: 0.9)
        SGD momentum (ignored by Adam).
    """

    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9

    def __post_init__(self) -> None:
        if self.name not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.name!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        """Create the optimizer over ``params``."""
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum)


def optimizer_state_to_record(optimizer: torch.optim.Optimizer) -> ArrayRecord:
    """Flatten the per-parameter state (momentum buffers, Adam moments) into arrays."""
    arrays = {
        f"{index}.{name}": to_array(value.detach().cpu().numpy())
        for index, entry in optimizer.state_dict()["state"].items()
        for name, value in entry.items()
        if isinstance(value, torch.Tensor)
    }
    return ArrayRecord(arrays)


def load_optimizer_state(optimizer: torch.optim.Optimizer, record: ArrayRecord) -> None:
    """Restore the state written by `optimizer_state_to_record`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, array in record.items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = torch.from_numpy(from_array(array))
    optimizer.load_state_dict(
        {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}
    )
