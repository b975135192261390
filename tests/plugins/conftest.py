"""Fixture that installs the test plugin for one test and forgets it afterwards."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flwr_split.codecs import registry as codec_registry
from flwr_split.sampling import registry as sampler_registry
from tests.plugins import PLUGIN_MODULE, PLUGIN_PATH


@pytest.fixture
def installed_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Put `PLUGIN_PATH` on ``sys.path`` and yield it.

    Afterwards the plugin's modules are dropped and the codec and sampler
    registries hold only what they held before, so other tests never see it.
    """
    monkeypatch.syspath_prepend(str(PLUGIN_PATH))
    for registry in (codec_registry._CODECS, sampler_registry._SAMPLERS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    yield PLUGIN_PATH
    for name in [name for name in sys.modules if name.partition(".")[0] == PLUGIN_MODULE]:
        del sys.modules[name]
