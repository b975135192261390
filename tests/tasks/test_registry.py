"""Tasks by name: `register_task`, `get_task`, entry points, and `TaskConfig` validation."""

from __future__ import annotations

import sys

import pytest
from torch import nn

from flwr_split.tasks import Classes, SplitTask, TaskConfig, Values, get_task, register_task


def _model(config: TaskConfig) -> tuple[nn.Module, nn.Module]:
    return nn.Linear(2, 2), nn.Linear(2, 2)


def _data(context, config):
    raise NotImplementedError


def _task(name: str, **fields: object) -> SplitTask:
    return SplitTask(name, model=_model, load_partition=_data, target=Classes(2), **fields)


def test_a_registered_task_is_found_and_a_second_one_under_its_name_refused():
    task = register_task(_task("tests_registry_pair", cuts={1: "after the linear layer"}))
    assert get_task("tests_registry_pair") is task
    assert register_task(task) is task
    with pytest.raises(ValueError, match="already registered"):
        register_task(_task("tests_registry_pair"))


def test_task_config_checks_the_name_the_cut_and_the_partitioner():
    register_task(_task("tests_registry_checked", cuts={1: "x"}, partitioners=("iid",)))
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        TaskConfig(task="nope")
    with pytest.raises(ValueError, match="has cuts"):
        TaskConfig(task="tests_registry_checked", cut=2)
    with pytest.raises(ValueError, match="partitioners"):
        TaskConfig(task="tests_registry_checked", partitioner="dirichlet")
    with pytest.raises(ValueError, match="no channel maps"):
        TaskConfig(task="tests_registry_checked", channels_last=True)
    assert TaskConfig(task="tests_registry_checked").definition.cuts == {1: "x"}


def test_bad_fields_are_refused():
    with pytest.raises(ValueError, match="non-empty"):
        _task("")
    with pytest.raises(TypeError, match="Classes or Values"):
        SplitTask("x", model=_model, load_partition=_data, target=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=">= 1"):
        Classes(0)
    with pytest.raises(ValueError, match="positive"):
        Values((0,))
    with pytest.raises(TypeError, match="SplitTask"):
        register_task("digits")  # type: ignore[arg-type]


def test_a_task_declared_as_an_entry_point_is_found_without_an_import(tmp_path, monkeypatch):
    (tmp_path / "tests_task_pkg.py").write_text(
        "from torch import nn\n"
        "from flwr_split.tasks import Classes, SplitTask\n"
        "TASK = SplitTask('tests_declared', model=lambda c: (nn.Linear(2, 2), nn.Linear(2, 2)),\n"
        "                 load_partition=lambda ctx, c: None, target=Classes(2))\n"
    )
    info = tmp_path / "tests_task_pkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tests-task-pkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[flwr_split.tasks]\ntests_declared = tests_task_pkg:TASK\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert TaskConfig(task="tests_declared").definition.name == "tests_declared"
    finally:
        sys.modules.pop("tests_task_pkg", None)
