"""Benchmarks run in their --quick form so they never rot."""

from __future__ import annotations

import json

from simulations import bench_step_time
from simulations.run import parse_overrides


def test_step_time_benchmark_quick_writes_csv_plot_and_env(tmp_path):
    frame = bench_step_time.main(["--quick", "--results", str(tmp_path)])
    assert list(frame["clients"]) == [2, 4]
    assert (frame["ratio"] > 0).all()
    (out,) = (tmp_path / "bench_step_time").iterdir()
    assert {p.name for p in out.iterdir()} == {"runs.csv", "step_time.png", "env.json"}
    assert json.loads((out / "env.json").read_text())["flwr"]


def test_run_overrides_keep_quoted_values_with_spaces():
    assert parse_overrides("uplink='quant:bits=8' run-name='a b' epochs=3 lr=0.1") == {
        "uplink": "quant:bits=8",
        "run-name": "a b",
        "epochs": 3,
        "lr": 0.1,
    }
    assert parse_overrides("") == {}
