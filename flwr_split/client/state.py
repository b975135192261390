"""What a client keeps in ``context.state`` between messages: weights, optimizer, metadata."""

from __future__ import annotations

import json
from typing import Any

import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context

from flwr_split.tasks.lean_optim import LeanOptimizer
from flwr_split.wire import Slice
from flwr_split.wire.arrays import array_record, from_array, to_array

STATE_WEIGHTS = "sl.bottom"
STATE_OPTIM = "sl.optim"
STATE_META = "sl.meta"
STATE_SCHEDULE = "sl.schedule"


def optimizer_state_tensors(
    optimizer: torch.optim.Optimizer | LeanOptimizer,
) -> dict[str, torch.Tensor]:
    """Return the per-parameter state (momentum buffers, Adam moments) by ``index.name``."""
    return {
        f"{index}.{name}": value
        for index, entry in optimizer.state_dict()["state"].items()
        for name, value in entry.items()
        if isinstance(value, torch.Tensor)
    }


def optimizer_state_to_record(optimizer: torch.optim.Optimizer | LeanOptimizer) -> ArrayRecord:
    """Flatten the per-parameter state (momentum buffers, Adam moments) into arrays."""
    return ArrayRecord(
        {
            k: to_array(v.detach().cpu().numpy())
            for k, v in optimizer_state_tensors(optimizer).items()
        }
    )


class TensorRecord:
    """Keeps an ArrayRecord of named tensors, re-serializing only the tensors that changed.

    A tensor counts as unchanged if it is the same tensor object with the same
    in-place version counter (``Tensor._version``, which every in-place write
    moves: optimizer steps, ``load_state_dict``, BatchNorm statistics) as when
    its Array was made. With nothing changed `write` returns the same record.
    """

    def __init__(self) -> None:
        self._arrays: dict[str, tuple[torch.Tensor, int, Array]] = {}
        self._record: ArrayRecord | None = None

    def adopt(self, record: ArrayRecord, tensors: dict[str, torch.Tensor]) -> None:
        """Take ``record`` as the serialization of ``tensors`` as they are now (just loaded)."""
        self._arrays = {name: (t, t._version, record[name]) for name, t in tensors.items()}
        self._record = record

    def write(self, tensors: dict[str, torch.Tensor]) -> ArrayRecord:
        """Return the record of ``tensors``, reusing the Arrays of unchanged ones."""
        changed = self._record is None or list(self._arrays) != list(tensors)
        arrays: dict[str, tuple[torch.Tensor, int, Array]] = {}
        for name, tensor in tensors.items():
            kept = self._arrays.get(name)
            if kept is not None and kept[0] is tensor and kept[1] == tensor._version:
                arrays[name] = kept
            else:
                array = to_array(tensor.detach().cpu().numpy())
                arrays[name] = (tensor, tensor._version, array)
                changed = True
        self._arrays = arrays
        if changed:
            self._record = array_record({name: kept[2] for name, kept in arrays.items()})
        assert self._record is not None
        return self._record


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
