"""The App through `flwr run` on a real local SuperLink + Ray simulation."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flwr_split.client.app import app as client_app
from flwr_split.launch.simulation import SimulationSuperLink
from flwr_split.options import RunSettings
from flwr_split.testing.inprocess import InProcessGrid
from strategies.parallel import ParallelSplitLearning

ROOT = Path(__file__).resolve().parents[2]
NUM_NODES = 4
RUN_CONFIG = {
    "min-nodes": NUM_NODES,
    "epochs": 1,
    "max-steps": 6,
    "eval-every": 3,
    "batch-size": 8,
    "uplink": "quant:bits=8",
    "downlink": "fp16",
    "run-name": "sim",
}


@pytest.mark.slow
def test_ray_simulation_and_inprocess_grid_give_the_same_metrics(tmp_path):
    run_config = {**RUN_CONFIG, "output-dir": str(tmp_path / "out")}
    with SimulationSuperLink(tmp_path / "flwr-home") as superlink:
        done = superlink.run(ROOT, run_config, NUM_NODES, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    ray = pd.read_csv(tmp_path / "out" / "sim.csv")
    assert (tmp_path / "out" / "sim.png").stat().st_size > 0
    assert (tmp_path / "out" / "sim_traffic.csv").stat().st_size > 0
    steps = pd.read_csv(tmp_path / "out" / "sim_steps.csv")
    assert list(steps["step"]) == list(range(6)) and (steps["clients"] == NUM_NODES).all()

    settings = RunSettings.from_run_config(run_config)
    strategy = ParallelSplitLearning(
        settings.task, optimizer=settings.optimizer, **settings.strategy
    )
    local = strategy.start(InProcessGrid(client_app, NUM_NODES), num_epochs=1, max_steps=6).history
    assert list(ray["step"]) == list(local["step"]) == [3, 6]
    for column in ("bytes_up", "bytes_down", "eval_samples", "rejected"):
        assert list(ray[column]) == list(local[column]), column
    # Ray actors run torch with one thread, so float sums may differ in the last bits.
    for column in ("accuracy", "loss", "train_loss"):
        assert ray[column].to_numpy() == pytest.approx(local[column].to_numpy(), abs=1e-4), column
