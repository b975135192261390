"""The strategy registry and the run config's ``strategy`` key."""

import pytest

from flwr_split.common.registry import RegistryError
from flwr_split.options import RunSettings
from strategies.parallel import ParallelSplitLearning
from strategies.registry import STRATEGIES, build_strategy


def test_parallel_is_registered_and_the_default():
    assert STRATEGIES.get("parallel") is ParallelSplitLearning
    assert STRATEGIES.group == "flwr_split.strategies"
    assert RunSettings.from_run_config({}).strategy_name == "parallel"


def test_build_strategy_configures_the_named_class_from_the_settings():
    settings = RunSettings.from_run_config({"uplink": "fp16", "batch-size": 4, "lr": 0.1})
    strategy = build_strategy(settings)
    assert type(strategy) is ParallelSplitLearning
    assert strategy.batch_size == 4 and strategy.session.optimizer.lr == 0.1
    assert strategy.profile_config is settings.strategy["profiles"]


def test_unknown_strategy_names_the_known_ones():
    settings = RunSettings.from_run_config({"strategy": "sequential"})
    with pytest.raises(RegistryError, match=r"unknown strategy 'sequential'; known: parallel"):
        build_strategy(settings)
