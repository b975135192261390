"""The committed data-set settings are valid run configs, and docs/datasets.md prints them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from flwr_split.options import RunSettings

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("mnist", "fashion_mnist")


def run_config(task: str) -> dict[str, object]:
    config = tomllib.loads((ROOT / "simulations" / "configs" / f"{task}.toml").read_text())
    return config["bench"]["run-config"]


def command(config: dict[str, object]) -> str:
    """The ``simulations.run`` command line of a run config, as docs/datasets.md prints it."""

    def value(v: object) -> str:
        return f"'{v}'" if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)

    pairs = " ".join(f"{key}={value(v)}" for key, v in config.items())
    return f'python -m simulations.run --run-config "{pairs}"'


@pytest.mark.parametrize("task", TASKS)
def test_the_settings_are_a_run_config_of_their_task(task):
    config = run_config(task)
    assert config["task"] == task
    settings = RunSettings.from_run_config(config)
    assert settings.task.task == task


@pytest.mark.parametrize("task", TASKS)
def test_docs_print_the_committed_settings(task):
    assert command(run_config(task)) in (ROOT / "docs" / "datasets.md").read_text()
