"""Test-wide settings: Flower never phones home, and its home stays inside the project."""

from __future__ import annotations

import os
from pathlib import Path

from flwr_split.launch.processes import FLOWER_ENV

for _key, _value in FLOWER_ENV.items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault(
    "FLWR_HOME", str(Path(__file__).resolve().parent.parent / ".flwr-home" / "tests")
)
