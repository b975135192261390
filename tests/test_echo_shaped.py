"""The echo App: SL-shaped content with the layout of a real SL step, and its steps in process."""

from __future__ import annotations

import sys
import tomllib

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import ArrayRecord, Context, Message, RecordDict

from flwr_split.client.app import app as client_app
from flwr_split.tasks import TaskConfig
from flwr_split.testing.inprocess import InProcessGrid
from simulations import bench_scale
from simulations.common import ECHO_APP, torch_threads
from strategies.parallel import ParallelSplitLearning

sys.path.insert(0, str(ECHO_APP))
from flwr_split_echo.client_app import app as echo_client_app  # noqa: E402
from flwr_split_echo.server_app import main as echo_server_main  # noqa: E402
from flwr_split_echo.shaped import (  # noqa: E402
    reply_content,
    state_records,
    step_content,
    with_compute,
)

BATCH = 2


def _layout(records) -> dict[str, object]:
    """Record type per key and, for ArrayRecords, each array's dtype and shape."""
    return {
        key: (
            {name: (array.dtype, tuple(array.shape)) for name, array in record.items()}
            if isinstance(record, ArrayRecord)
            else type(record).__name__
        )
        for key, record in records.items()
    }


def test_shaped_echo_records_match_a_real_sl_step():
    captured: list[tuple[Message, Message, dict[str, object]]] = []

    def capturing(message: Message, context: Context) -> Message:
        reply = client_app(message, context)
        both_ways = "sl.grad" in message.content and "sl.acts" in reply.content
        if both_ways and "sl.bottom" not in message.content:  # a step, not a weight sync
            captured.append((message, reply, _layout(context.state)))  # the state changes later
        return reply

    strategy = ParallelSplitLearning(
        TaskConfig(), batch_size=BATCH, eval_every=10**9, min_available_nodes=2
    )
    strategy.start(InProcessGrid(capturing, 2), num_epochs=1, max_steps=3)
    message, reply, state_layout = captured[-1]
    assert _layout(step_content(BATCH)) == _layout(message.content)
    assert _layout(reply_content(BATCH)) == _layout(reply.content)
    assert _layout(state_records()) == state_layout
    assert set(step_content(BATCH)["sl.cfg"].keys()) == set(message.content["sl.cfg"].keys())
    assert np.isfinite(float(reply_content(BATCH)["sl.info"]["compute_s"]))


def test_with_compute_keeps_the_layout_and_reports_at_least_the_asked_compute():
    reply = with_compute(reply_content(BATCH), 0.003)
    assert _layout(reply) == _layout(reply_content(BATCH))
    assert 0.003 <= float(reply["sl.info"]["compute_s"]) < 1.0
    assert float(reply_content(BATCH)["sl.info"]["compute_s"]) == 0.0  # the cached one is untouched
    assert list(with_compute(RecordDict(), 0.001).keys()) == ["sl.info"]


def test_busy_compute_lasts_what_was_asked_not_a_step_more(monkeypatch):
    """A fake clock: a training step takes 1 ms, a clock read 1 us."""
    import flwr_split_echo.shaped as shaped

    clock = {"now": 0.0}

    def perf_counter() -> float:
        clock["now"] += 1e-6
        return clock["now"]

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            clock["now"] += 1e-3
            return self.weight * x

    model = Step()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    monkeypatch.setattr(shaped, "_busy_model", lambda: (model, optimizer, torch.ones(1)))
    monkeypatch.setattr(
        shaped, "time", type("Clock", (), {"perf_counter": staticmethod(perf_counter)})
    )
    spent = shaped.busy_compute(0.0035)
    assert 0.0035 <= spent < 0.0035 + 1e-4  # three steps, then the clock: not a fourth step
    assert model.weight.grad is not None


@pytest.mark.parametrize("app", list(bench_scale.ECHO_RUNS))
def test_every_echo_run_replays_the_sl_runs_messages_pauses_and_compute(app, tmp_path):
    sl_steps = pd.DataFrame(
        {
            "step": [0, 1, 2],
            "messages": [2, 2, 1],
            "server_s": [0.002, float("nan"), 0.001],
            "client_compute_s": [0.5, 0.004, 0.002],  # step 0 is not in the median
        }
    )
    defaults = tomllib.loads((ECHO_APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    config = {
        **defaults["config"],
        **bench_scale.echo_run_config(app, (3, 2, BATCH), sl_steps, tmp_path),
    }
    grid = InProcessGrid(echo_client_app, 3, run_config=config)
    with torch_threads(torch.get_num_threads()):  # a computing echo runs on one thread
        echo_server_main(grid, Context(1, 0, {}, RecordDict(), config))
    steps = pd.read_csv(tmp_path / f"{app.replace('-', '_')}_n3_k2_steps.csv")
    paced, payload, computes = bench_scale.ECHO_RUNS[app]
    assert list(steps["messages"]) == list(steps["replied"]) == [2, 2, 1]
    assert (steps["warmup_replied"] == 3).all()
    assert list(steps["pause_s"]) == ([0.002, 0.0, 0.001] if paced else [0.0] * 3)
    busy = 0.002 if computes else 0.0  # the median compute per message over steps 1..
    assert (steps["client_compute_s"] >= steps["messages"] * busy).all()
    assert (steps["client_compute_s"] < 1.0).all() and computes == (
        steps["client_compute_s"] > 0
    ).all()
    kept = {key for context in grid.contexts.values() for key in context.state.keys()}
    assert kept == (set(state_records()) if payload == "sl" else set())
