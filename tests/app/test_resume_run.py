"""`flwr run` with ``checkpoint-every``: the ServerApp's process is killed mid-run, ``resume``
continues it, and the finished history is the uninterrupted run's (Ray simulation)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pandas as pd
import pytest

from flwr_split.client.app import app as client_app
from flwr_split.launch.processes import command_line
from flwr_split.launch.simulation import SimulationSuperLink
from flwr_split.metrics.results import run_paths
from flwr_split.options import RunSettings
from flwr_split.testing.inprocess import InProcessGrid
from strategies.registry import build_strategy

ROOT = Path(__file__).resolve().parents[2]
NODES, STEPS = 3, 12
JOB = {
    "min-nodes": NODES,
    "epochs": 1,
    "max-steps": STEPS,
    "eval-every": 4,
    "batch-size": 8,
    "sync": "every_step",
    "checkpoint-every": 4,
    "run-name": "resumed",
}

pytestmark = pytest.mark.slow


def test_a_killed_serverapp_resumed_by_flwr_run_ends_as_the_uninterrupted_run(tmp_path):
    run_config = {**JOB, "output-dir": str(tmp_path / "out")}
    paths = run_paths(tmp_path / "out", "resumed")
    with SimulationSuperLink(tmp_path / "flwr-home") as superlink:
        first: dict[str, object] = {}
        job = threading.Thread(
            target=lambda: first.update(done=superlink.run(ROOT, run_config, NODES, timeout=900))
        )
        job.start()

        def nine_steps_done() -> bool:
            steps = paths["steps"]
            return steps.exists() and len(steps.read_text().splitlines()) > 9

        superlink.wait_until(nine_steps_done, 900, "9 steps on disk")
        for pid in superlink.alive():  # the ServerApp runs in the simulation process
            if "flwr-simulation" in command_line(pid):
                os.kill(pid, signal.SIGKILL)
        job.join(timeout=900)
        written = pd.read_csv(paths["steps"])
        assert "final test accuracy" not in first["done"].stdout  # it did not finish
        assert list(written["step"]) == list(range(len(written))) and len(written) < STEPS
        done = superlink.run(ROOT, {**run_config, "resume": True}, NODES, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resuming from" in done.stdout + done.stderr
    resumed = pd.read_csv(paths["history"])
    assert list(pd.read_csv(paths["steps"])["step"]) == list(range(STEPS))

    settings = RunSettings.from_run_config(run_config)
    local = build_strategy(settings).start(
        InProcessGrid(client_app, NODES), num_epochs=1, max_steps=STEPS
    )
    history = local.history
    assert list(resumed["step"]) == list(history["step"]) == [4, 8, 12]
    for column in ("bytes_up", "bytes_down", "eval_samples", "rejected"):
        assert list(resumed[column]) == list(history[column]), column
    # Ray actors run torch with one thread, so float sums may differ in the last bits.
    for column in ("accuracy", "loss", "train_loss"):
        assert resumed[column].to_numpy() == pytest.approx(history[column].to_numpy(), abs=1e-4)
