"""A killed run resumed from its checkpoint ends as the uninterrupted run does; rows
written before the kill are on disk; checkpoints are atomic and hold no code."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from flwr_split.client.app import app as default_client_app
from flwr_split.metrics.results import run_paths
from flwr_split.server import SplitCallback
from flwr_split.server.checkpoint import load_checkpoint, save_checkpoint
from flwr_split.server.stream import CsvRows, ResultStream
from flwr_split.tasks import OptimizerConfig, TaskConfig
from flwr_split.testing import InProcessGrid
from strategies.parallel import ParallelSplitLearning
from tests.helpers import run_inprocess

ROOT = Path(__file__).resolve().parents[2]
NODES, EPOCHS = 3, 2
OPTIONS = {"batch_size": 32, "eval_every": 4, "min_available_nodes": NODES}
"""15 steps per epoch of 3 digits clients; evaluations where the checkpoints of every_step fall
(the clients hold the server's bottom then: the resumed run re-sends it, booked as ``resume``)."""
EXACT = ["step", "epoch", "eval_samples", "rejected", "num_clients", "bytes_up", "bytes_down"]
EXACT += ["activation_bytes", "gradient_bytes", "mean_batch"]
CLOSE = ["accuracy", "loss", "train_loss", "batch_deviation", "batch_deviation_l2"]
STEP_COLUMNS = ["step", "epoch", "clients", "samples", "batch", "active_clients", "messages"]


class KilledError(Exception):
    """Stands for the ServerApp's process dying."""


class KillAt(SplitCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, row):
        if row["step"] == self.step:
            raise KilledError


def start(sync: str, out, callbacks=(), **kwargs):
    """One run of the job on a fresh grid (a resumed run is a new Flower run)."""
    strategy = ParallelSplitLearning(TaskConfig(), sync=sync, **OPTIONS)
    stream = ResultStream(out, "run", strategy.traffic)
    result = strategy.start(
        InProcessGrid(default_client_app, NODES),
        num_epochs=EPOCHS,
        callbacks=[stream, *callbacks],
        checkpoint_every=4,
        checkpoint_path=run_paths(out, "run")["checkpoint"],
        **kwargs,
    )
    return strategy, result


def assert_same_run(resumed, uninterrupted):
    assert resumed.history[EXACT].equals(uninterrupted.history[EXACT])
    for column in CLOSE:
        np.testing.assert_allclose(
            resumed.history[column], uninterrupted.history[column], rtol=0, atol=1e-6
        )
    assert resumed.steps[STEP_COLUMNS].equals(uninterrupted.steps[STEP_COLUMNS])
    for name, value in uninterrupted.top.to_torch_state_dict().items():
        assert torch.allclose(resumed.top.to_torch_state_dict()[name], value, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sync", "kill", "resumed_at"), [("every_step", 10, 8), ("every_epoch", 20, 15)]
)
def test_a_killed_run_resumed_from_its_checkpoint_ends_as_the_uninterrupted_run(
    tmp_path, sync, kill, resumed_at
):
    _, uninterrupted = start(sync, tmp_path / "a")
    with pytest.raises(KilledError):
        start(sync, tmp_path / "b", [KillAt(kill)])
    paths = run_paths(tmp_path / "b", "run")
    # Rows made before the kill are on disk: every step up to it, the evaluations.
    assert list(pd.read_csv(paths["steps"])["step"]) == list(range(kill + 1))
    assert list(pd.read_csv(paths["history"])["step"]) == list(range(4, kill + 1, 4))
    assert pd.read_csv(paths["traffic"])["step"].max() == kill  # the killed step's forward
    assert load_checkpoint(paths["checkpoint"])["position"]["step"] == resumed_at
    _, resumed = start(sync, tmp_path / "b", resume_from=paths["checkpoint"])
    assert_same_run(resumed, uninterrupted)
    # What the stream wrote is what the finished run returns (the kill's extra rows are gone).
    steps = pd.read_csv(paths["steps"])
    assert list(steps["step"]) == list(range(len(uninterrupted.steps)))
    history = pd.read_csv(paths["history"])
    pd.testing.assert_frame_equal(
        history[EXACT + CLOSE], resumed.history[EXACT + CLOSE], check_dtype=False
    )


def test_resuming_with_other_options_or_another_run_is_refused(tmp_path):
    start("every_step", tmp_path, max_steps=5)
    checkpoint = run_paths(tmp_path, "run")["checkpoint"]
    optimizer = OptimizerConfig(lr=0.1)
    other = ParallelSplitLearning(TaskConfig(), sync="every_step", optimizer=optimizer, **OPTIONS)
    with pytest.raises(ValueError, match=r"another configuration: \['lr'\]"):
        other.start(InProcessGrid(default_client_app, NODES), resume_from=checkpoint)
    fewer = ParallelSplitLearning(
        TaskConfig(), sync="every_step", **{**OPTIONS, "min_available_nodes": 2}
    )
    with pytest.raises(ValueError, match="clients"):
        fewer.start(InProcessGrid(default_client_app, 2), resume_from=checkpoint)


def test_a_never_synced_run_cannot_be_checkpointed(tmp_path):
    with pytest.raises(ValueError, match="no point at which it can be resumed"):
        run_inprocess(2, sync="never", checkpoint_every=1, checkpoint_path=tmp_path / "c")


def test_a_checkpoint_is_replaced_atomically_and_never_unpickles_code(tmp_path, monkeypatch):
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, {"position": {"step": 1}, "w": torch.ones(2), "v": np.float64(2.5)})
    state = load_checkpoint(path)
    assert state["position"] == {"step": 1} and state["v"] == 2.5
    # A writer killed mid-write leaves the previous checkpoint and no stray file.
    monkeypatch.setattr(torch, "save", lambda *a, **k: (_ for _ in ()).throw(KilledError()))
    with pytest.raises(KilledError):
        save_checkpoint(path, {"position": {"step": 2}})
    monkeypatch.undo()
    assert load_checkpoint(path)["position"] == {"step": 1}
    assert os.listdir(tmp_path) == ["run.ckpt"]
    # A pickle that would run code is refused (torch.load with weights_only).
    with open(path, "wb") as out:
        pickle.dump({"format": 1, "boom": KilledError()}, out, protocol=2)
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        load_checkpoint(path)


def test_csv_rows_append_and_widen_the_header_when_a_row_brings_a_column(tmp_path):
    rows = CsvRows(tmp_path / "rows.csv")
    rows.append([{"a": 1, "b": 2.5}])
    rows.append([{"a": 2, "b": 3.5}, {"a": 3}])
    rows.append([{"a": 4, "c": "x"}])
    frame = pd.read_csv(tmp_path / "rows.csv")
    assert list(frame.columns) == ["a", "b", "c"] and list(frame["a"]) == [1, 2, 3, 4]
    assert frame["b"].isna().tolist() == [False, False, True, True]


JOB = """
import sys, torch
torch.set_num_threads(1)
from tests.strategies.test_resume import start
start(sys.argv[1], sys.argv[2])
"""


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_in_another_process(tmp_path):
    """The ServerApp's process dies for real: rows and checkpoint are on disk, the rest follows."""
    torch.set_num_threads(1)
    out = tmp_path / "killed"
    paths = run_paths(out, "run")
    job = subprocess.Popen(
        [sys.executable, "-c", JOB, "every_step", str(out)], cwd=ROOT, env=os.environ.copy()
    )
    try:
        deadline = time.monotonic() + 600
        while not (paths["steps"].exists() and len(paths["steps"].read_text().splitlines()) > 14):
            assert job.poll() is None and time.monotonic() < deadline, "the job ended early"
            time.sleep(0.05)
        job.send_signal(signal.SIGKILL)
    finally:
        job.kill()
        job.wait()
    on_disk = pd.read_csv(paths["steps"])
    assert len(on_disk) >= 14 and list(on_disk["step"]) == list(range(len(on_disk)))
    at = load_checkpoint(paths["checkpoint"])["position"]["step"]
    assert at % 4 == 0 and 12 <= at <= len(on_disk)
    _, resumed = start("every_step", out, resume_from=paths["checkpoint"])
    _, uninterrupted = start("every_step", tmp_path / "whole")
    assert_same_run(resumed, uninterrupted)
