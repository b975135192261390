"""`SplitStrategy.start`, shaped like Flower's: trained arrays out, initial arrays in,
centralized evaluation and callbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, MetricRecord, RecordDict
from torch import nn

from flwr_split.server import SplitCallback
from flwr_split.tasks import TaskConfig, build_model, load_task_data
from tests.helpers import run_inprocess

TASK = TaskConfig()


def _load(module: nn.Module, record: ArrayRecord) -> nn.Module:
    module.load_state_dict(record.to_torch_state_dict())
    return module


def _unsplit(arrays: RecordDict) -> nn.Sequential:
    bottom, top = build_model(TASK)
    return nn.Sequential(_load(bottom, arrays["bottom"]), _load(top, arrays["top"]))


def _accuracy(model: nn.Module) -> float:
    test = load_task_data(TASK)[1]
    with torch.no_grad():
        logits = model(torch.from_numpy(test.x))
    return float((logits.argmax(1) == torch.from_numpy(test.y)).float().mean())


@pytest.mark.slow  # trains two full epochs
def test_the_returned_bottom_and_top_reproduce_the_reported_test_accuracy():
    _, result, _ = run_inprocess(4, epochs=2, max_steps=None)  # every_epoch sync
    model = _unsplit(RecordDict({"bottom": result.bottom, "top": result.top}))
    assert result.final_accuracy > 0.5  # it trained
    assert _accuracy(model) == pytest.approx(result.final_accuracy, abs=1e-9)


@pytest.mark.slow  # trains a full epoch
def test_initial_arrays_set_the_starting_weights():
    _, first, _ = run_inprocess(4, epochs=1, max_steps=None)
    trained = RecordDict({"bottom": first.bottom, "top": first.top})
    strategy, resumed, _ = run_inprocess(4, max_steps=0, initial_arrays=trained)
    assert resumed.final_accuracy == pytest.approx(first.final_accuracy)
    for name, value in first.top.to_torch_state_dict().items():
        assert torch.equal(strategy.top.state_dict()[name], value)
    _, fresh, _ = run_inprocess(4, max_steps=0)
    assert fresh.final_accuracy != pytest.approx(first.final_accuracy)


def test_initial_arrays_of_the_wrong_shape_or_name_are_refused():
    _, top = build_model(TASK)
    wrong = ArrayRecord({k: Array(v.numpy()[..., :1].copy()) for k, v in top.state_dict().items()})
    with pytest.raises(ValueError, match="top arrays"):
        run_inprocess(2, initial_arrays={"top": wrong})
    with pytest.raises(ValueError, match="expected some of"):
        run_inprocess(2, initial_arrays={"middle": wrong})


def test_evaluate_fn_runs_at_every_evaluation_on_the_current_arrays():
    calls: list[int] = []

    def evaluate_fn(step: int, arrays: RecordDict) -> MetricRecord:
        calls.append(step)
        return MetricRecord({"accuracy": _accuracy(_unsplit(arrays))})

    _, result, _ = run_inprocess(4, max_steps=6, eval_every=3, evaluate_fn=evaluate_fn)
    assert calls == [3, 6] == list(result.history["step"])
    assert sorted(result.evaluate_metrics_serverapp) == [3, 6]
    final = result.history.iloc[-1]
    assert final["server_accuracy"] == pytest.approx(final["accuracy"], abs=1e-9)


class Recorder(SplitCallback):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def on_step(self, row):
        self.events.append(("step", int(row["step"])))

    def on_evaluation(self, row):
        self.events.append(("evaluation", int(row["step"])))

    def on_epoch_end(self, epoch, step):
        self.events.append(("epoch", epoch))


def test_callbacks_hear_every_step_evaluation_and_epoch_end_in_order():
    recorder = Recorder()
    _, result, _ = run_inprocess(2, max_steps=4, eval_every=2, callbacks=[recorder])
    expected = [("step", 0), ("step", 1), ("evaluation", 2), ("step", 2), ("step", 3)]
    assert recorder.events == [*expected, ("epoch", 0), ("evaluation", 4)]
    assert len(result.steps) == 4 and np.array_equal(result.history["step"], [2, 4])
