"""What SL-FAC sends (`Quantized`) and where its coefficients go: components and wire order."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch


@dataclass
class Quantized:
    """Everything SL-FAC sends, before serialization (the reference for `decode`).

    Attributes
    ----------
    shape : tuple[int, ...]
        Shape of the encoded tensor.
    cutoffs : torch.Tensor
        int64 ``r*`` per channel (one value in tensor scope).
    bits : torch.Tensor
        int64 width per component (``2C`` entries, 0 for empty or dropped ones).
    lo, hi : torch.Tensor
        float64 minimum and maximum per component (float32 values).
    codes : torch.Tensor
        Integer codes of the components with ``bits > 0``, in wire order
        (``uint8`` when ``bmax <= 8``, else ``int32``).
    """

    shape: tuple[int, ...]
    cutoffs: torch.Tensor
    bits: torch.Tensor
    lo: torch.Tensor
    hi: torch.Tensor
    codes: torch.Tensor

    @classmethod
    def from_arrays(cls, shape: tuple[int, ...], *arrays: np.ndarray) -> Quantized:
        """Build it from numpy ``cutoffs, bits, lo, hi, codes`` (shared, not copied)."""
        return cls(shape, *(torch.from_numpy(array) for array in arrays))


@dataclass(frozen=True)
class ComponentLayout:
    """The components ``L_0, H_0, L_1, H_1, ...`` of ``(C, B, P)`` band-ordered coefficients.

    Channel ``c``'s first ``low[c]`` positions form ``L_c``, the others ``H_c``.
    On the wire a component's coefficients run over samples, then positions,
    and the components follow each other in the order above.

    Parameters
    ----------
    batch : int
        Samples ``B``.
    low : np.ndarray
        int64 low-band positions of each of the ``C`` channels.
    positions : int
        Positions ``P`` per plane.
    """

    batch: int
    low: np.ndarray
    positions: int

    @cached_property
    def high(self) -> np.ndarray:
        """``(C, P)`` bool: position ``p`` of channel ``c`` belongs to ``H_c``."""
        return np.arange(self.positions) >= self.low[:, None]

    @cached_property
    def component(self) -> np.ndarray:
        """``(C, P)`` int64 component index (``2c`` or ``2c + 1``) of every position."""
        return 2 * np.arange(self.low.size)[:, None] + self.high

    @cached_property
    def counts(self) -> np.ndarray:
        """int64 coefficients per component (``2C`` entries; zero for an empty one)."""
        return self.batch * np.stack([self.low, self.positions - self.low], 1).reshape(-1)

    def per_component(self, per_position: np.ndarray) -> np.ndarray:
        """Add a ``(C, P)`` per-position quantity over each component's positions (``2C``)."""
        return np.bincount(self.component.reshape(-1), per_position.reshape(-1), 2 * self.low.size)

    def ranges(self, lows: np.ndarray, highs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reduce ``(C, P)`` per-position minima and maxima to float64 ones per component.

        An empty component gets 0 for both.
        """

        def extreme(per_position: np.ndarray, reduce: np.ufunc, fill: float) -> np.ndarray:
            if self._split:
                high = self.high
                parts = [reduce.reduce(np.where(p, per_position, fill), 1) for p in (~high, high)]
            else:  # a whole row is its channel's one component: reduce it once, unmasked
                parts = [reduce.reduce(per_position, 1)] * 2
            stacked = np.stack(parts, 1).reshape(-1).astype(np.float64)
            return np.where(self.counts == 0, 0.0, stacked)

        return extreme(lows, np.minimum, np.inf), extreme(highs, np.maximum, -np.inf)

    @cached_property
    def _channel_groups(self) -> list[tuple[int, np.ndarray | slice]]:
        """Channels grouped by their low-band size: ``(low, channels)`` pairs.

        A group of consecutive channels is a slice (numpy copies it without gathering),
        any other an array of ascending channel indices.
        """
        order = np.argsort(self.low, kind="stable")
        starts = np.flatnonzero(np.diff(self.low[order], prepend=-1))
        ends = [*starts[1:].tolist(), order.size]
        lows = self.low[order[starts]].tolist()
        groups = [order[a:b] for a, b in zip(starts.tolist(), ends, strict=True)]
        return [
            (low, slice(group[0], group[-1] + 1) if group[-1] - group[0] < group.size else group)
            for low, group in zip(lows, groups, strict=True)
        ]

    def _wire_entries(self, sent: np.ndarray) -> np.ndarray | None:
        """``(C, B P)`` bool mask of the entries of `to_wire`'s rows that go on the wire.

        None when every non-empty component is sent (then the rows are the stream).
        """
        if sent[self.counts > 0].all():
            return None
        entry = np.arange(self.batch * self.positions)
        in_low = entry < self.batch * self.low[:, None]
        return np.where(in_low, sent[0::2, None], sent[1::2, None])

    @cached_property
    def _split(self) -> bool:
        """Whether some channel has both a low and a high part (its row must be rearranged)."""
        return bool(np.any((self.low > 0) & (self.low < self.positions)))

    def to_wire(self, coeffs: np.ndarray, sent: np.ndarray) -> np.ndarray:
        """Return the entries of ``(C, B, P)`` ``coeffs`` that go on the wire, in wire order.

        ``sent`` is a bool mask over the ``2C`` components: those with ``bits > 0``.
        Row ``c`` of the ``(C, B P)`` array built here is ``L_c`` followed by ``H_c``,
        so the rows end to end are the stream; a channel wholly low or wholly high
        is already its row (no copy when every channel is).
        """
        batch, channels = self.batch, self.low.size
        rows = coeffs.reshape(channels, -1)
        if self._split:
            rows = np.empty_like(rows)
            for low, group in self._channel_groups:
                part = coeffs[group]
                rows[group, : batch * low] = part[:, :, :low].reshape(len(part), batch * low)
                rows[group, batch * low :] = part[:, :, low:].reshape(len(part), -1)
        keep = self._wire_entries(sent)
        return rows.reshape(-1) if keep is None else rows[keep]

    def from_wire(self, stream: np.ndarray, sent: np.ndarray) -> np.ndarray:
        """Invert `to_wire`: the ``(C, B, P)`` coefficients, zero at the positions not sent."""
        batch, positions, channels = self.batch, self.positions, self.low.size
        keep = self._wire_entries(sent)
        if keep is None:
            rows = stream.reshape(channels, batch * positions)
        else:
            rows = np.zeros(keep.shape, stream.dtype)
            rows[keep] = stream
        if not self._split:
            return rows.reshape(channels, batch, positions)
        coeffs = np.empty((channels, batch, positions), stream.dtype)
        for low, group in self._channel_groups:
            part = rows[group]
            coeffs[group, :, :low] = part[:, : batch * low].reshape(len(part), batch, low)
            coeffs[group, :, low:] = part[:, batch * low :].reshape(len(part), batch, -1)
        return coeffs
