"""A character LSTM for next-character prediction, as a layer list cut after the first LSTM."""

from __future__ import annotations

import torch
from torch import nn

EMBEDDING = 8
HIDDEN = 64
"""Units per LSTM layer of the default model."""
LEAF_HIDDEN = 256
"""Units per LSTM layer of LEAF's Shakespeare model."""


def char_lstm_cuts(hidden: int = HIDDEN) -> dict[int, str]:
    """Return the valid cut values of `char_lstm` and what the client sends at each."""
    return {1: f"after embedding + LSTM layer 1 (80 x {hidden}, every time step)"}


class CharEmbedding(nn.Embedding):
    """An embedding that accepts character classes of any integer dtype (e.g. ``uint8``)."""

    def forward(self, classes: torch.Tensor) -> torch.Tensor:
        """Embed ``classes`` of shape ``(batch, time)``."""
        return super().forward(classes.long())


class LSTMOutputs(nn.LSTM):
    """A batch-first LSTM that returns only its outputs at every time step."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Return the outputs, shape ``(batch, time, hidden)``."""
        return super().forward(inputs)[0]


class LastStep(nn.Module):
    """Select the last time step of a ``(batch, time, features)`` sequence."""

    def forward(self, sequence: torch.Tensor) -> torch.Tensor:
        """Return ``sequence[:, -1]``."""
        return sequence[:, -1]


def char_lstm(num_classes: int, group_norm: bool = False, hidden: int = HIDDEN) -> list[nn.Module]:
    """Return the character LSTM as a list of blocks.

    Block 1 (the client) embeds each character in 8 dimensions and runs an
    LSTM with ``hidden`` units, sending its outputs at all 80 time steps
    (5,120 floats per sample at the default 64); block 2 (the server) is a
    second LSTM of the same width whose last output a linear layer maps to the
    next character's logits. The default trains in minutes on a CPU; LEAF's
    model has ``hidden = 256`` (`LEAF_HIDDEN`, about 8x the compute per step).

    Parameters
    ----------
    num_classes : int
        Number of character classes (embedding rows and logits).
    group_norm : bool (default: False)
        Must be False (see Raises).
    hidden : int (default: 64)
        Units of each LSTM layer, the cut width per time step.

    Raises
    ------
    ValueError
        If ``group_norm`` is asked for: the option is for the convolutional
        bottoms; an LSTM has no convolution output to normalize.
    """
    if group_norm:
        raise ValueError("the character LSTM has no GroupNorm option")
    return [
        nn.Sequential(
            CharEmbedding(num_classes, EMBEDDING),
            LSTMOutputs(EMBEDDING, hidden, batch_first=True),
        ),
        nn.Sequential(
            LSTMOutputs(hidden, hidden, batch_first=True),
            LastStep(),
            nn.Linear(hidden, num_classes),
        ),
    ]
