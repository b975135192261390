"""What a task predicts: class labels (`Classes`) or real-valued targets (`Values`).

The target kind decides how targets travel on the wire (labels as the smallest
unsigned integer dtype, values as float32) and how a client's own data is
checked before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Classes:
    """Classification: one integer label in ``[0, num_classes)`` per sample.

    Parameters
    ----------
    num_classes : int
        Number of label classes, >= 1.
    """

    num_classes: int

    def __post_init__(self) -> None:
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int):
            raise TypeError(f"num_classes must be an int, got {self.num_classes!r}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")

    def check(self, y: np.ndarray, what: str) -> None:
        """Raise `ValueError` unless ``y`` is a vector of integer labels in range."""
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{what} labels must be a 1-d integer array, got {y.dtype}{y.shape}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ValueError(f"{what} labels must lie in [0, {self.num_classes})")


@dataclass(frozen=True)
class Values:
    """Regression: float32 targets of a fixed per-sample shape.

    Parameters
    ----------
    shape : tuple[int, ...] (default: ())
        Shape of one sample's target (``()``: one number per sample).
    """

    shape: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not all(isinstance(d, int) and d >= 1 for d in self.shape):
            raise ValueError(f"target shape must be positive ints, got {self.shape!r}")

    def check(self, y: np.ndarray, what: str) -> None:
        """Raise `ValueError` unless ``y`` is float32 of shape ``(n, *shape)``, all finite."""
        if y.dtype != np.float32 or y.shape[1:] != self.shape:
            raise ValueError(
                f"{what} targets must be float32 of shape (n, *{self.shape}), "
                f"got {y.dtype}{y.shape}"
            )
        if not np.isfinite(y).all():
            raise ValueError(f"{what} targets hold NaN or inf values")


Target = Classes | Values
"""The kind of target a task predicts."""
