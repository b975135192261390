"""Live progress: snapshots from a run's rows, their log line, and the bar that draws them."""

from __future__ import annotations

import io
import time
from dataclasses import replace

import pytest

from flwr_split.server import SplitCallback
from flwr_split.server.progress import PROGRESS_PREFIX, Progress, ProgressBar, ProgressReporter
from tests.helpers import run_inprocess


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_snapshot_survives_its_log_line_and_other_lines_are_not_snapshots():
    snapshot = Progress(12, 225, 1, 25, 3_400_000, 4.5, "accuracy", 0.9583)
    line = snapshot.to_line()
    assert line.startswith(PROGRESS_PREFIX) and "\n" not in line
    assert Progress.from_line(f"\x1b[92mINFO \x1b[0m: {line}\n") == snapshot
    assert Progress.from_line("step 20 epoch 2: accuracy 0.38") is None
    assert Progress.from_line(PROGRESS_PREFIX + "{not json") is None
    assert Progress.from_line(PROGRESS_PREFIX + '{"step": 1}') is None


def test_a_run_reports_steps_epochs_scores_and_bytes_and_ends_with_a_done_snapshot():
    seen: list[Progress] = []
    _, result, _ = run_inprocess(
        2, epochs=2, max_steps=None, batch_size=128, eval_every=4, progress=seen.append
    )
    steps = len(result.steps)
    assert [p.step for p in seen] == sorted(p.step for p in seen)
    assert not seen[0].training and "waiting for the nodes" in seen[0].postfix()
    assert seen[1].step == 0 and seen[1].total == steps  # the fixed plan is known up front
    assert {p.epoch for p in seen} == {0, 1} and all(p.epochs == 2 for p in seen)
    # every evaluation sends a snapshot with its score
    scored = [p for p in seen if p.value is not None]
    assert [p.value for p in scored][-1] == pytest.approx(result.final_accuracy)
    assert {p.metric for p in scored} == {"accuracy"}
    last = seen[-1]
    assert last.done and last.step == last.total == steps
    assert sum(p.done for p in seen) == 1
    final = result.history.iloc[-1]
    assert last.bytes == final["bytes_up"] + final["bytes_down"]


def test_max_steps_caps_the_planned_total():
    seen: list[Progress] = []
    run_inprocess(2, epochs=5, max_steps=3, progress=seen.append)
    assert seen[1].total == 3 and seen[-1].step == 3


def test_steps_send_at_most_one_snapshot_per_interval_but_evaluations_always():
    sent: list[Progress] = []
    reporter = ProgressReporter(sent.append, 1, None, lambda: 0, interval=3600.0)
    reporter.on_epoch_start(0, 10)
    for step in range(5):
        reporter.on_step({"step": step})
    assert [p.step for p in sent] == [0]  # the epoch's start only
    reporter.on_evaluation({"step": 5, "epoch": 0, "loss": 0.5, "train_loss": 0.4})
    assert sent[-1].step == 5 and (sent[-1].metric, sent[-1].value) == ("loss", 0.5)


def test_progress_true_draws_lines_on_stderr(capsys):
    run_inprocess(2, max_steps=3, progress=True)
    err = capsys.readouterr().err
    assert "step 3/3" in err and "epoch 1/1" in err and "MB" in err


def _snapshot(step: int, done: bool = False) -> Progress:
    return Progress(step, 10, 0, 1, 1000 * step, float(step), "accuracy", 0.5, done)


def test_off_a_terminal_lines_come_at_most_every_interval_and_the_last_at_once():
    out = io.StringIO()
    bar = ProgressBar(out, line_interval=3600.0)
    for step in range(5):
        bar(_snapshot(step))
    bar(_snapshot(10, done=True))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("step 0/10") and lines[1].startswith("step 10/10")
    assert "ETA" in lines[1] and "accuracy 0.5000" in lines[1] and "epoch 1/1" in lines[1]


def test_on_a_terminal_a_tqdm_bar_shows_step_eta_and_postfix_and_keeps_ticking():
    out = Terminal()
    bar = ProgressBar(out, tick=True)
    bar(_snapshot(3))
    drawn = out.getvalue()
    assert "3/10" in drawn and "accuracy=0.5000" not in drawn and "accuracy 0.5000" in drawn
    before = len(out.getvalue())
    time.sleep(1.3)  # no snapshot: the ticker redraws elapsed time and ETA
    assert len(out.getvalue()) > before
    bar.write("a log line")
    bar(_snapshot(10, done=True))
    assert "a log line" in out.getvalue() and "10/10" in out.getvalue()
    assert bar._bar is None  # closed by the done snapshot


def test_a_ticking_bar_off_a_terminal_repeats_the_last_snapshot_with_time_moved_on():
    out = io.StringIO()
    bar = ProgressBar(out, line_interval=0.4, tick=True, heartbeat=0.4)
    bar(_snapshot(3))
    time.sleep(2.5)  # a long step: no snapshot
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) >= 2 and all(line.startswith("step 3/10") for line in lines)
    assert lines[0] != lines[-1]  # the elapsed time moved on
    assert bar._ticker is None


def test_without_tick_nothing_is_drawn_between_snapshots():
    out = Terminal()
    bar = ProgressBar(out)
    bar(_snapshot(3))
    drawn = out.getvalue()
    time.sleep(1.3)
    assert out.getvalue() == drawn
    bar.close()


def test_before_training_the_bar_says_the_run_is_starting_then_starts_its_own_bar():
    out = Terminal()
    bar = ProgressBar(out)
    bar(Progress(0, 0, 0, 3, 0, 4.0))
    assert "waiting for the nodes" in out.getvalue()
    bar(_snapshot(2))
    assert bar._bar is not None and bar._bar.total == 10
    assert ProgressBar.line(Progress(0, 0, 0, 3, 0, 75.0)).startswith("01:15 starting")
    bar.close()


class _KilledError(Exception):
    pass


class _KillAt(SplitCallback):
    def on_step(self, row):
        if row["step"] == 3:
            raise _KilledError


def test_a_resumed_run_counts_the_checkpoints_steps_as_done_but_not_in_its_rate(tmp_path):
    checkpoint = tmp_path / "run.ckpt"
    options = {"sync": "every_step", "batch_size": 128, "eval_every": 2}
    saving = {"checkpoint_every": 2, "checkpoint_path": checkpoint}
    with pytest.raises(_KilledError):
        run_inprocess(3, max_steps=None, callbacks=[_KillAt()], **options, **saving)
    seen: list[Progress] = []
    _, result, _ = run_inprocess(
        3, max_steps=None, progress=seen.append, resume_from=checkpoint, **options
    )
    training = [p for p in seen if p.training]
    first = training[0]
    assert 0 < first.resumed == first.step < len(result.steps)
    assert first.value is not None  # the checkpoint's last evaluation
    assert all(p.resumed == first.resumed for p in training)
    assert training[-1].done and training[-1].step == len(result.steps)
    line = ProgressBar.line(replace(training[-1], elapsed=10.0))
    rate = (training[-1].step - first.resumed) / 10.0
    assert f"{rate:.1f} step/s" in line or f"{1 / rate:.1f} s/step" in line


def test_off_a_terminal_training_start_is_written_at_once_even_right_after_a_heartbeat():
    out = io.StringIO()
    bar = ProgressBar(out, line_interval=3600.0, tick=True, heartbeat=0.5)
    bar(Progress(0, 0, 0, 1, 0, 0.0))
    time.sleep(1.6)  # heartbeats of the starting line
    beats = len(out.getvalue().splitlines())
    bar(_snapshot(0))  # training starts: written now, not at the next heartbeat
    assert out.getvalue().splitlines()[beats].startswith("step 0/10")
    bar.close()
    assert beats >= 2
