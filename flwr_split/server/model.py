"""The server's copy of the bottom, versioned, and loading weights into the model halves."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ArrayRecord
from torch import nn

from flwr_split.wire import ProtocolError, load_weights, weights_to_record


class ServerBottom:
    """The server's copy of the bottom and the version of its weights.

    Clients holding another version get these weights with their next message;
    a strategy bumps ``version`` whenever it changes the weights.

    Parameters
    ----------
    module : nn.Module
        The bottom, initialized like every client's.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.version = 0
        self._record: tuple[int, ArrayRecord] | None = None

    def record(self) -> ArrayRecord:
        """Return the weights as an ArrayRecord, converted once per version."""
        if self._record is None or self._record[0] != self.version:
            self._record = (self.version, weights_to_record(self.module))
        return self._record[1]

    def reload(self) -> None:
        """Forget the converted record (the weights changed without a new version)."""
        self._record = None

    def state_dict(self) -> dict[str, Any]:
        """Return the weights and their version."""
        return {"weights": self.module.state_dict(), "version": self.version}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict`."""
        self.module.load_state_dict(state["weights"])
        self.version = int(state["version"])
        self.reload()


def load_arrays(modules: Mapping[str, nn.Module], arrays: Mapping[str, ArrayRecord]) -> None:
    """Load ``arrays[name]`` into ``modules[name]`` for every name given.

    Raises
    ------
    ValueError
        If ``arrays`` names a module that is not there, or its keys, shapes or
        dtypes differ from the module's state dict, or it holds NaN or inf.
    """
    unknown = set(arrays) - set(modules)
    if unknown:
        raise ValueError(f"arrays for {sorted(unknown)}; expected some of {sorted(modules)}")
    for name, record in arrays.items():
        try:
            load_weights(modules[name], record, f"{name} arrays")
        except ProtocolError as exc:
            raise ValueError(str(exc)) from None
