"""What a client keeps in ``context.state`` between messages: weights, optimizer, metadata."""

from __future__ import annotations

import json
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context

from flwr_split.tasks.lean_optim import LeanOptimizer
from flwr_split.wire import Slice
from flwr_split.wire.arrays import from_array, to_array

STATE_WEIGHTS = "sl.bottom"
STATE_OPTIM = "sl.optim"
STATE_META = "sl.meta"
STATE_SCHEDULE = "sl.schedule"


def optimizer_state_to_record(optimizer: torch.optim.Optimizer | LeanOptimizer) -> ArrayRecord:
    """Flatten the per-parameter state (momentum buffers, Adam moments) into arrays."""
    arrays = {
        f"{index}.{name}": to_array(value.detach().cpu().numpy())
        for index, entry in optimizer.state_dict()["state"].items()
        for name, value in entry.items()
        if isinstance(value, torch.Tensor)
    }
    return ArrayRecord(arrays)


def load_optimizer_state(
    optimizer: torch.optim.Optimizer | LeanOptimizer, record: ArrayRecord
) -> None:
    """Restore the state written by `optimizer_state_to_record`."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, array in record.items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = torch.from_numpy(from_array(array))
    optimizer.load_state_dict({**optimizer.state_dict(), "state": state})


def schedule_to_record(state: dict[str, Any]) -> ConfigRecord:
    """Store an LR scheduler's ``state_dict()`` (plain data) as JSON."""
    return ConfigRecord({"json": json.dumps(state)})


def schedule_of(record: ConfigRecord) -> dict[str, Any]:
    """Read the scheduler state written by `schedule_to_record`."""
    return json.loads(str(record["json"]))


def state_stamp(context: Context) -> tuple[str, int]:
    """Return the ``(token, seq)`` of the last saved session state (``("", -1)`` if none)."""
    if STATE_META not in context.state:
        return "", -1
    meta = context.state[STATE_META]
    return str(meta.get("token", "")), int(meta.get("seq", -1))


def last_forward_of(meta: ConfigRecord) -> tuple[Slice, int] | None:
    """Read ``(slice, step)`` of the last training forward from the state metadata."""
    if "last_forward" not in meta:
        return None
    epoch, offset, count, step = (int(v) for v in meta["last_forward"])
    return (epoch, offset, count), step
