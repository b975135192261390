"""Checkpoints of a run: what the server needs to continue it, written atomically.

A checkpoint is one file, ``torch.save`` of plain data and tensors only, so it
loads with ``torch.load(weights_only=True)``: a checkpoint file cannot run
code. It holds the strategy's `state_dict` (top and its optimizer, the server's
bottom and version, optimizer of the server-owned bottom, history, traffic,
clock and exchange totals, rejections), the global random states, the wall
seconds so far and the `Position` in the loop.

A checkpoint is taken only where the clients hold nothing the server lacks
(`SplitStrategy.resumable`): a resumed run is a new Flower run whose clients
start with an empty ``context.state``, and every client gets the server's
bottom with its first message.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

FORMAT = 1
"""Version of the checkpoint layout; a file of another version is refused."""


@dataclass(frozen=True)
class Position:
    """Where a run continues: epoch, row of that epoch's plan, steps done.

    Parameters
    ----------
    epoch : int (default: 0)
        The epoch to run next (or to go on with).
    index : int (default: 0)
        The next row of that epoch's plan.
    step : int (default: 0)
        Steps run so far.
    plan : list[list[int]] (default: [])
        The epoch's plan when ``index > 0`` (empty: plan the epoch afresh).
    """

    epoch: int = 0
    index: int = 0
    step: int = 0
    plan: list[list[int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the position as plain data."""
        return {"epoch": self.epoch, "index": self.index, "step": self.step, "plan": self.plan}


@dataclass
class Checkpointing:
    """When and where a run writes checkpoints.

    Parameters
    ----------
    path : Path
        The checkpoint file (replaced atomically by each new one).
    every : int
        Write one at the first resumable point at least this many steps after
        the previous one (or the start); ``0`` never.
    last_step : int (default: 0)
        Step of the previous checkpoint (or of the position resumed from).
    """

    path: Path
    every: int
    last_step: int = 0

    def due(self, step: int) -> bool:
        """Whether a checkpoint at ``step`` is due."""
        return self.every > 0 and step - self.last_step >= self.every

    def write(self, state: Mapping[str, Any], step: int) -> None:
        """Save ``state`` as the checkpoint of ``step``."""
        save_checkpoint(self.path, state)
        self.last_step = step


def plain(value: Any) -> Any:
    """Return ``value`` with NumPy arrays and scalars as lists and Python numbers.

    Dicts, lists, tuples are converted item by item; tensors and other values
    are returned as they are.
    """
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file, fsync, rename.

    A reader sees the previous checkpoint or this one, never a part of one,
    whenever the writer is killed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            torch.save({"format": FORMAT, **plain(dict(state))}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint` (tensors and plain data only).

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a checkpoint of this format.
    """
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise ValueError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a checkpoint of format {FORMAT}")
    return state


def rng_states() -> dict[str, Any]:
    """Return the global random states of Python, NumPy and torch (CPU)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Restore the global random states saved by `rng_states`."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
