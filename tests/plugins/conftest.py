"""Fixture that installs the test plugin for one test and forgets it afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import on_path
from tests.plugins import PLUGIN_PATH


@pytest.fixture
def installed_plugin() -> Iterator[Path]:
    """Put `PLUGIN_PATH` on ``sys.path`` and yield it; forget the plugin afterwards."""
    with on_path(PLUGIN_PATH):
        yield PLUGIN_PATH
