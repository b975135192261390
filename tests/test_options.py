"""The one declaration of the run options against pyproject, README, parsing and defaults."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import pytest

import simulations.common
from flwr_split.client.session import DEVICE_KEY, THREADS_KEY
from flwr_split.metrics.profiles import ProfileConfig
from flwr_split.options import OPTIONS, Group, RunSettings, read_options
from flwr_split.options.table import markdown_table
from flwr_split.tasks import TaskConfig
from flwr_split.tasks.optim import OptimizerConfig
from strategies.base import SplitStrategy

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = RunSettings.from_run_config({})


def pyproject_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["config"]


def test_pyproject_declares_exactly_the_options_with_their_defaults_and_types():
    table = pyproject_config()
    assert list(table) == [option.key for option in OPTIONS]
    for option in OPTIONS:
        assert type(table[option.key]) is option.kind, option.key
        assert table[option.key] == option.default, option.key


def test_readme_configuration_table_is_the_declared_one():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert [row.split(" | ")[0].strip("| `") for row in rows] == [o.key for o in OPTIONS]
    assert markdown_table() in section, "regenerate with: python -m flwr_split.options"


def test_defaults_are_the_parse_of_the_pyproject_table():
    assert RunSettings.from_run_config(pyproject_config()) == DEFAULTS


def test_defaults_are_those_of_the_config_classes_and_the_strategy():
    assert DEFAULTS.task == TaskConfig()
    assert DEFAULTS.optimizer == OptimizerConfig()
    assert DEFAULTS.strategy["profiles"] == ProfileConfig()
    parameters = inspect.signature(SplitStrategy.__init__).parameters
    for name, value in DEFAULTS.strategy.items():
        if name != "profiles":
            assert parameters[name].default == value, name


def test_run_split_takes_the_declared_defaults(monkeypatch):
    built = {}

    class Recorder:
        def __init__(self, task, **kwargs):
            built.update(kwargs, task=task)

        def start(self, grid, **kwargs):
            return "result"

    monkeypatch.setattr(simulations.common, "ParallelSplitLearning", Recorder)
    simulations.common.run_split(TaskConfig(), clients=2, epochs=1, uplink="fp16")
    expected = {**DEFAULTS.strategy, "uplink": "fp16", "eval_every": 20}
    assert built == {
        "task": TaskConfig(),
        "optimizer": DEFAULTS.optimizer,
        "measure_messages": False,
        **expected,
    }


def test_every_value_reaches_its_field():
    settings = RunSettings.from_run_config(
        {"seed": 7, "max-steps": 5, "optimizer": "adam", "eval-every": 3, "latency-ms": 2}
    )
    assert settings.task.seed == settings.strategy["profiles"].seed == 7
    assert settings.max_steps == 5 and DEFAULTS.max_steps is None
    assert settings.optimizer.name == "adam"
    assert settings.strategy["eval_every"] == 3
    assert settings.strategy["profiles"].latency_ms == 2.0


def test_device_and_client_threads_are_the_options_the_clientapp_reads():
    assert [o.key for o in OPTIONS if Group.CLIENT in o.groups] == [DEVICE_KEY, THREADS_KEY]
    client = read_options({THREADS_KEY: 4})[Group.CLIENT]
    assert client == {"device": "cpu", "client_threads": 4}


def test_choices_are_named_in_the_help():
    for option in OPTIONS:
        for choice in option.choices:
            assert f"`{choice}`" in option.help, (option.key, choice)


def test_unknown_key_names_the_closest_valid_one():
    with pytest.raises(ValueError, match=r"key 'epoch'; did you mean 'epochs'\?"):
        RunSettings.from_run_config({"epoch": 3})
    with pytest.raises(ValueError, match=r"'straggler-fractoin'.*'straggler-fraction'"):
        RunSettings.from_run_config({"straggler-fractoin": 0.1})


def test_unknown_key_without_a_close_one_lists_the_keys():
    with pytest.raises(ValueError, match=r"unknown run config key 'zzz'; keys: task, cut, "):
        RunSettings.from_run_config({"zzz": 1})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", "3", "'epochs' must be int, got '3'"),
        ("lr", True, "'lr' must be float, got True"),
        ("group-norm", 1, "'group-norm' must be bool, got 1"),
        ("optimizer", "rmsprop", r"'optimizer' must be one of \('sgd', 'adam'\), got 'rmsprop'"),
    ],
)
def test_bad_value_names_the_key(key, value, message):
    with pytest.raises(ValueError, match=message):
        RunSettings.from_run_config({key: value})


def test_an_int_is_accepted_for_a_float():
    assert RunSettings.from_run_config({"lr": 1}).optimizer.lr == 1.0


def test_the_default_run_name_says_task_and_codecs_and_a_given_name_wins():
    assert DEFAULTS.run_name == "digits_up-identity_down-identity"
    settings = RunSettings.from_run_config(
        {"task": "mnist1d", "uplink": "ms:ratio=0.99,bits=2", "downlink": "fp16"}
    )
    assert settings.run_name == "mnist1d_up-ms-ratio0.99-bits2_down-fp16"
    assert RunSettings.from_run_config({"run-name": "mine"}).run_name == "mine"


def test_sync_is_one_of_the_policies():
    with pytest.raises(ValueError, match="every_epoch"):
        read_options({"sync": "sometimes"})
