"""A user's own App (tests/apps/byo_app): own model on 3x32x32 inputs, own per-client .npz
files, own loss, a regression task, and a codec from another package found by entry point;
through the in-process grid and through `flwr run` on its own App directory."""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flwr.app import Context, RecordDict

from flwr_split.launch.simulation import SimulationSuperLink
from flwr_split.testing import InProcessGrid
from tests.helpers import on_path
from tests.plugins import PLUGIN_PATH, plugin_env

APP_DIR = Path(__file__).resolve().parent / "byo_app"
NODES, SAMPLES, TEST_SAMPLES = 3, 48, 16


def _image_files(folder: Path) -> None:
    """Class ``c`` lights up quadrant ``c`` of every channel: a pattern a small CNN learns."""
    for k in range(NODES):
        rng = np.random.default_rng(k)
        y = rng.integers(0, 4, SAMPLES + TEST_SAMPLES)
        x = rng.normal(0.0, 0.5, (len(y), 3, 32, 32)).astype(np.float32)
        for i, label in enumerate(y):
            row, col = divmod(int(label), 2)
            x[i, :, 16 * row : 16 * row + 16, 16 * col : 16 * col + 16] += 1.0
        _save(folder / f"byo_images_{k}.npz", x, y)


def _regression_files(folder: Path) -> None:
    weights = np.linspace(-1.0, 1.0, 8, dtype=np.float32)
    for k in range(NODES):
        rng = np.random.default_rng(100 + k)
        x = rng.normal(size=(SAMPLES + TEST_SAMPLES, 8)).astype(np.float32)
        y = (x @ weights)[:, None].astype(np.float32)
        _save(folder / f"byo_regression_{k}.npz", x, y)


def _save(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    np.savez(path, x_train=x[:SAMPLES], y_train=y[:SAMPLES], x_test=x[SAMPLES:], y_test=y[SAMPLES:])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("byo-data")
    _image_files(folder)
    _regression_files(folder)
    return folder


@pytest.fixture(scope="module")
def app_module():
    """The App's module, imported as Flower imports it (its folder and the plugin on the path)."""
    with on_path(APP_DIR, PLUGIN_PATH):
        yield importlib.import_module("byo_app.app")


def _run_config(task: str, data_dir: Path, output: Path) -> dict[str, object]:
    return {
        "task": task,
        "uplink": "plugin_scale:factor=2",
        "data-dir": str(data_dir),
        "output": str(output),
        "nodes": NODES,
        "epochs": 2,
    }


def _run_inprocess(app_module, run_config: dict[str, object]) -> pd.DataFrame:
    grid = InProcessGrid(app_module.client_app, NODES, run_config=run_config)
    context = Context(
        run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config
    )
    app_module.main(grid, context)
    return pd.read_csv(run_config["output"])


@pytest.mark.slow  # trains a CNN on 3x32x32 images
def test_own_images_task_with_own_loss_and_plugin_codec_trains_in_process(
    app_module, data_dir, tmp_path
):
    history = _run_inprocess(app_module, _run_config("byo_images", data_dir, tmp_path / "h.csv"))
    assert history["accuracy"].iloc[-1] >= 0.75  # 4 classes: chance is 0.25
    assert history["rejected"].iloc[-1] == 0
    assert history["uplink"].iloc[-1] == str({"id": "plugin_scale", "factor": 2.0})
    assert history["eval_samples"].iloc[-1] == NODES * TEST_SAMPLES


def test_own_regression_task_reports_its_loss_and_metric_in_process(app_module, data_dir, tmp_path):
    run_config = _run_config("byo_regression", data_dir, tmp_path / "h.csv")
    history = _run_inprocess(app_module, run_config)
    assert "accuracy" not in history.columns
    assert history["loss"].iloc[-1] < 0.5 * history["loss"].iloc[0]
    assert np.isfinite(history["mae"]).all()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["byo_images", "byo_regression"])
def test_the_same_app_runs_through_flwr_run_on_its_own_app_directory(
    app_module, data_dir, tmp_path, task
):
    app_dir = shutil.copytree(
        APP_DIR, tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__")
    )
    superlink = SimulationSuperLink(tmp_path / "flwr-home")
    superlink.env["PYTHONPATH"] = plugin_env(superlink.env)["PYTHONPATH"]
    ray_config = _run_config(task, data_dir, tmp_path / "ray.csv")
    with superlink:
        done = superlink.run(app_dir, ray_config, NODES, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    ray = pd.read_csv(tmp_path / "ray.csv")
    local = _run_inprocess(app_module, _run_config(task, data_dir, tmp_path / "local.csv"))
    assert list(ray["step"]) == list(local["step"])
    for column in ("bytes_up", "bytes_down", "eval_samples", "rejected"):
        assert list(ray[column]) == list(local[column]), column
    assert np.allclose(ray["loss"], local["loss"], rtol=1e-4)
