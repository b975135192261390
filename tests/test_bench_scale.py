"""The scale benchmark's parts that need no Flower process (--quick runs in test_benchmarks)."""

from __future__ import annotations

import pandas as pd
import pytest

from simulations import bench_scale
from simulations.common import run_configured


def test_a_timed_cell_takes_its_steps_with_k_clients_of_two_samples(tmp_path):
    result = run_configured(bench_scale.sl_run_config(4, 2, 3, tmp_path), clients=4)
    assert list(result.steps["clients"]) == [2, 2, 2]
    assert (result.steps["samples"] == 2 * bench_scale.SL_BATCH).all()
    assert list(result.history["step"]) == [3]  # no evaluation until the end


def test_echo_runs_add_the_shaped_and_computing_echoes_only_when_asked():
    assert bench_scale.echo_runs(shaped=False, computing=False) == ("echo", "echo-paced")
    assert bench_scale.echo_runs(shaped=True, computing=False) == ("echo", "echo-paced", "echo-sl")
    assert bench_scale.echo_runs(shaped=False, computing=True) == (
        "echo",
        "echo-paced",
        "echo-compute",
    )
    assert set(bench_scale.echo_runs(shaped=True, computing=True)) == set(bench_scale.ECHO_RUNS)


def test_summary_compares_the_sl_step_with_every_echo_floor():
    apps = {  # app: (median step, server time, clients' compute per step, peak RSS, + pause)
        "flwr-split": (1.0, 0.1, 0.8, 2.0, 0.0),
        "echo": (0.3, 0.0, 0.0, 1.0, 0.0),
        "echo-paced": (0.5, 0.0, 0.0, 1.0, 0.1),
        "echo-sl": (0.6, 0.0, 0.0, 1.0, 0.1),
        "echo-compute": (0.85, 0.0, 0.8, 1.0, 0.1),
        "echo-sl-compute": (0.4, 0.0, 0.8, 1.0, 0.1),
    }
    runs = pd.DataFrame(
        [
            {
                "app": app,
                "nodes": 4,
                "participants": 2,
                "step_s": step,
                "paced_step_s": step + pause,
                "server_s": server,
                "client_compute_s": compute,
                "peak_rss_gb": rss,
                "peak_pss_gb": rss,
                "run_wall_s": 10.0,
            }
            for app, (step, server, compute, rss, pause) in apps.items()
        ]
    )
    (row,) = bench_scale.summarize(runs, actors=2).to_dict("records")
    assert row["compute_s"] == pytest.approx(0.1 + 0.8 / 2)
    assert (row["echo_step_s"], row["echo_unpaced_step_s"], row["echo_sl_step_s"]) == (
        0.5,
        0.3,
        0.6,
    )
    assert row["overhead_ratio"] == pytest.approx(0.5 / 0.5)
    assert row["overhead_ratio_sl_shaped"] == pytest.approx(0.5 / 0.6)
    assert row["echo_compute_floor_s"] == pytest.approx(0.85 - 0.4)
    assert row["echo_sl_compute_floor_s"] == pytest.approx(0.4 - 0.4)
    assert row["goal_met"] and row["goal_met_compute_matched"]  # 1.0 <= 1.2 * 0.5 + 0.5, twice
    assert not row["goal_met_sl_compute_matched"]  # 1.0 > 1.2 * 0.0 + 0.5
    # The SL step includes the server's compute; the paced echo's step plus its pause does too.
    assert row["echo_compute_paced_step_s"] == pytest.approx(0.95)
    assert row["step_ratio_compute"] == pytest.approx(1.0 / 0.95)
    assert row["goal_met_step_ratio_compute"]  # 1.05 <= 1.1 (1.0 / 0.85 = 1.18 without the pause)
    assert row["step_ratio_sl_compute"] == pytest.approx(1.0 / 0.5)
