"""`bench_scale`'s run modes: `--sl-alone` runs the SL App without its echo floors (no Flower
process here); `--echo-alone` and `--sl-alone` exclude each other."""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest

from simulations import bench_scale


def test_sl_alone_runs_no_echo_app_and_prints_the_sl_row(tmp_path, monkeypatch, capsys):
    asked: list[tuple[str, ...]] = []

    def fake_cell(superlink, cell, steps, out, echo_apps, trained, extra):
        asked.append(echo_apps)
        row = {"app": "flwr-split", "nodes": cell[0], "participants": cell[1], "step_s": 1.5}
        return [row], pd.DataFrame([{"step": 0, "wall_s": 1.5}])

    monkeypatch.setattr(bench_scale, "run_cell", fake_cell)
    monkeypatch.setattr(bench_scale, "SimulationSuperLink", lambda home: contextlib.nullcontext())
    runs = bench_scale.main(
        ["--nodes", "7", "--participants", "3", "--sl-alone", "--results", str(tmp_path)]
    )
    assert asked == [()]
    assert list(runs["app"]) == ["flwr-split"] and runs["step_s"].iloc[0] == 1.5
    assert "flwr-split" in capsys.readouterr().out


def test_echo_alone_and_sl_alone_cannot_be_asked_together(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        bench_scale.main(["--echo-alone", "--sl-alone", "--results", str(tmp_path)])
    assert stopped.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
