"""Where tensors live: the ``device`` option (``cpu``, ``cuda``, ``cuda:N``, ``auto``)."""

from __future__ import annotations

from functools import lru_cache

import torch

CPU = torch.device("cpu")
"""Where codecs and the wire work, and the default device of both halves."""
DEVICE_CHOICES = ("cpu", "cuda", "auto")
"""Device names the ``device`` option takes (``cuda:N`` too, for one GPU of several)."""


@lru_cache(maxsize=16)
def resolve_device(name: str) -> torch.device:
    """Return the torch device ``name`` asks for; ``auto`` is CUDA when available, else CPU.

    Remembered per name: every message of a run names the same device.

    Raises
    ------
    ValueError
        If ``name`` is not a device name above, or asks for CUDA on a machine without it.
    """
    base, _, index = name.partition(":")
    if base not in DEVICE_CHOICES or (index and (base != "cuda" or not index.isdigit())):
        raise ValueError(f"device must be one of {DEVICE_CHOICES} or 'cuda:N', got {name!r}")
    if base == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device here")
    return torch.device(name)
