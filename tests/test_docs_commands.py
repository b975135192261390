"""Every ``--run-config "..."`` printed in the README and docs/ is a run config that works.

The fast test checks each one as a launcher would (keys, values, codec and sampler
specs); the slow one trains two steps of each on the in-process grid.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flwr_split.codecs import get_codec
from flwr_split.options import RunSettings
from flwr_split.sampling import get_sampler
from simulations.common import run_configured
from simulations.run import parse_overrides

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_CONFIG = re.compile(r'--run-config "([^"]*)"')
PLACEHOLDER = re.compile(r"\.\.\.|=N\b")
LOCAL_KEYS = ("min-nodes", "output-dir", "run-name")
"""Keys that name where and on how many nodes a run happens, not what it trains."""


def documented_run_configs() -> list[tuple[str, str]]:
    """Return ``(page name, run config text)`` of every concrete ``--run-config`` on a page."""
    found = []
    for page in PAGES:
        for text in RUN_CONFIG.findall(page.read_text()):
            if not PLACEHOLDER.search(text) and (page.name, text) not in found:
                found.append((page.name, text))
    return found


CONFIGS = documented_run_configs()


def trainable(text: str) -> dict[str, object]:
    """Parse a documented run config, without the keys the in-process grid sets itself."""
    config = parse_overrides(text)
    return {key: value for key, value in config.items() if key not in LOCAL_KEYS}


def test_the_pages_print_run_configs():
    assert len(CONFIGS) >= 15


@pytest.mark.parametrize(("page", "text"), CONFIGS, ids=[text for _, text in CONFIGS])
def test_documented_run_config_is_valid(page, text):
    config = parse_overrides(text)
    assert config, f"{page}: nothing parsed from {text!r}"
    RunSettings.from_run_config(config)
    for direction in ("uplink", "downlink"):
        if direction in config:
            get_codec(config[direction])
    if "sampler" in config:
        get_sampler(config["sampler"])


@pytest.mark.slow
@pytest.mark.parametrize(("page", "text"), CONFIGS, ids=[text for _, text in CONFIGS])
def test_documented_run_config_trains_two_steps(page, text):
    config = {**trainable(text), "max-steps": 2, "eval-every": 2}
    result = run_configured(config, clients=4)
    assert int(result.history["step"].iloc[-1]) == 2, page
