"""A character LSTM for next-character prediction, as a layer list cut after the first LSTM."""

from __future__ import annotations

import torch
from torch import nn

CHAR_LSTM_CUTS = {1: "after embedding + LSTM layer 1 (80 x 64, every time step)"}
"""Valid cut values and what the client sends at each."""

EMBEDDING = 8
HIDDEN = 64


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


def char_lstm(num_classes: int, group_norm: bool = False) -> list[nn.Module]:
    """Return the character LSTM as a list of blocks.

    Block 1 (the client) embeds each character in 8 dimensions and runs an
    LSTM with 64 units, sending its outputs at all 80 time steps (5,120 floats
    per sample); block 2 (the server) is a second 64-unit LSTM whose last
    output a linear layer maps to the next character's logits. LEAF's model
    is wider (two layers of 256); this one trains in minutes on a CPU.

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
            LSTMOutputs(EMBEDDING, HIDDEN, batch_first=True),
        ),
        nn.Sequential(
            LSTMOutputs(HIDDEN, HIDDEN, batch_first=True),
            LastStep(),
            nn.Linear(HIDDEN, num_classes),
        ),
    ]
