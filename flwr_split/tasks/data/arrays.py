"""A data set held in memory as a pair of numpy arrays (inputs, targets)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabeledArrays:
    """Inputs and targets of equal length: what a task's ``load_partition`` returns.

    Parameters
    ----------
    x : np.ndarray
        Inputs of any per-sample shape and dtype, first axis indexes samples.
    y : np.ndarray
        Targets: integer class labels of shape ``(n,)`` (`Classes`) or float32
        values of shape ``(n, *shape)`` (`Values`).
    """

    x: np.ndarray
    y: np.ndarray

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} samples but y has {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: np.ndarray) -> LabeledArrays:
        """Return the samples at ``indices``, in that order."""
        return LabeledArrays(self.x[indices], self.y[indices])
