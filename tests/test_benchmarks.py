"""Benchmarks run in their --quick form so they never rot."""

from __future__ import annotations

import json
import math
import tomllib

import numpy as np
import pandas as pd
import pytest
import torch

from flwr_split.codecs import get_codec
from flwr_split.codecs.base import Codec, CodecError
from flwr_split.tasks import TaskConfig, builtin_cut_shape
from flwr_split.tasks.optim import OptimizerConfig
from simulations import (
    bench_deploy,
    bench_fedlite,
    bench_ms,
    bench_ray_records,
    bench_sampling,
    bench_scale,
    bench_slfac,
    bench_step_time,
    common,
    probe_fedlite,
)
from simulations.bench_ms import matched_topk, topk_nbytes
from simulations.bench_slfac import matched_specs


@pytest.mark.slow  # times many steps
def test_step_time_benchmark_quick_writes_csv_plot_and_env(tmp_path):
    frame = bench_step_time.main(["--quick", "--max-batch", "4", "--results", str(tmp_path)])
    assert list(frame["clients"]) == [2, 4]
    assert list(frame["batch_per_client"]) == [4, 4]
    assert (frame["compute_s"] > 0).all() and (frame["codec_s"] > 0).all()
    assert (frame["split_s"] > frame["message_size_s"]).all()
    assert (frame["message_size_s"] > 0).all()  # the SL run's sizes were measured and timed
    assert (frame["split_cpu_s"] > frame["message_size_cpu_s"]).all()
    assert {"framework_per_client_ms", "framework_cpu_per_client_ms"} <= set(frame.columns)
    assert (frame["cut_s"] > 0).all() and (frame["echo_s"] > 0).all()
    floor = (frame["echo_cpu_s"] + frame["cut_cpu_s"] - frame["compute_cpu_s"]) / frame["clients"]
    assert np.allclose(frame["floor_cpu_per_client_ms"], floor * 1e3)
    bare = (frame["bare_cpu_s"] - frame["cut_cpu_s"]) / frame["clients"]
    assert np.allclose(frame["bare_cpu_per_client_ms"], bare * 1e3)
    (out,) = (tmp_path / "bench_step_time").iterdir()
    assert {p.name for p in out.iterdir()} == {"runs.csv", "steps.csv", "step_time.png", "env.json"}
    assert len(pd.read_csv(out / "steps.csv")) == 2 * 3
    assert json.loads((out / "env.json").read_text())["flwr"]


@pytest.mark.slow  # starts Ray
def test_ray_records_benchmark_quick_times_every_variant_against_the_empty_one(tmp_path):
    summary = bench_ray_records.main(
        ["--quick", "--busy", "0", "0.001", "--results", str(tmp_path)]
    )
    assert list(summary["variant"]) == list(bench_ray_records.VARIANTS) * 2
    assert (summary["median_ms"] > 0).all()
    assert (summary.loc[summary["variant"] == "empty", "over_empty_ms"] == 0).all()
    (out,) = (tmp_path / "bench_ray_records").iterdir()
    calls = pd.read_csv(out / "calls.csv")
    assert len(calls) == 2 * 5 * len(bench_ray_records.VARIANTS)
    assert (calls["round_trip_ms"] >= calls["overhead_ms"]).all()
    assert {p.name for p in out.iterdir()} == {
        "calls.csv",
        "summary.csv",
        "ray_records.png",
        "env.json",
    }


@pytest.mark.slow  # a sweep of several runs, in worker processes
def test_ms_benchmark_quick_compares_codecs_at_matched_bytes(tmp_path):
    runs = bench_ms.main(["--quick", "--workers", "1", "--results", str(tmp_path)])
    assert list(runs["family"]) == ["fp32", "ms", "topk", "quant"]
    ms_bytes, topk_bytes = runs["activation_bytes"].iloc[1], runs["activation_bytes"].iloc[2]
    assert topk_bytes <= ms_bytes < topk_bytes * 1.01  # top-k gets the same byte budget
    assert runs["uplink_ratio"].iloc[1] == pytest.approx(13.79, abs=0.02)
    (out,) = (tmp_path / "bench_ms").iterdir()
    assert {p.name for p in out.iterdir()} == {
        "runs.csv",
        "summary.csv",
        "codecs.csv",
        "histories.csv",
        "accuracy_vs_bytes.png",
        "env.json",
    }


def test_bench_optimizer_reads_the_config_keys_and_defaults_the_missing_ones():
    assert common.bench_optimizer({"optimizer": "adam", "lr": 0.003}) == OptimizerConfig(
        "adam", 0.003
    )
    assert common.bench_optimizer({"lr": 0.01, "momentum": 0.0}) == OptimizerConfig(
        lr=0.01, momentum=0.0
    )
    assert common.bench_optimizer({}) == OptimizerConfig()
    with pytest.raises(ValueError, match="optimizer must be one of"):
        common.bench_optimizer({"optimizer": "adagrad"})


@pytest.mark.parametrize(
    "path", sorted(bench_ms.DEFAULT_CONFIG.parent.glob("bench_ms*.toml")), ids=str
)
def test_every_ms_config_names_its_seeds_optimizer_and_valid_codecs(path):
    bench = tomllib.loads(path.read_text())["bench"]
    assert bench["seeds"] and isinstance(common.bench_optimizer(bench), OptimizerConfig)
    for entry in bench["tasks"]:
        for cut in entry["cuts"]:
            task = TaskConfig(task=entry["task"], cut=cut, seed=bench["seeds"][0])
            n = bench["batch_size"] * math.prod(builtin_cut_shape(task))
            for _, spec, _ in bench_ms.codec_grid(bench, n):
                get_codec(spec)


def test_ms_summary_averages_each_codec_over_the_seeds():
    runs = pd.DataFrame(
        {
            "task": ["mnist"] * 4,
            "cut": [1] * 4,
            "seed": [0, 0, 1, 1],
            "family": ["fp32", "topk", "fp32", "topk"],
            "codec": ["identity", "topk:ratio=0.9", "identity", "topk:ratio=0.9"],
            "matched_to": ["", "ms:ratio=0.99,bits=2"] * 2,
            "final_accuracy": [0.9, 0.5, 0.8, 0.7],
            "uplink_ratio": [1.0, 13.8, 1.0, 13.6],
        }
    )
    summary = bench_ms.summarize(runs).set_index("family")
    assert list(summary["seeds"]) == [2, 2]
    assert summary.loc["fp32", "accuracy_mean"] == pytest.approx(0.85)
    assert summary.loc["topk", "accuracy_std"] == pytest.approx(pd.Series([0.5, 0.7]).std())
    assert summary.loc["topk", "uplink_ratio_mean"] == pytest.approx(13.7)


def test_sampling_summary_averages_each_cell_over_the_seeds():
    cells = [("ugs", 0, 0.8, 10.0), ("ugs", 1, 0.6, 14.0), ("fls", 0, 0.3, 20.0)]
    runs = pd.DataFrame(
        [
            {
                "task": "fashion_mnist",
                "partition": "severe",
                "clients": 8,
                "batch_size": 32,
                "sampler": sampler,
                "seed": seed,
                "accuracy": accuracy,
                "sim_time_s": time,
                "sim_time_stragglers_s": 2 * time,
                "sim_time_exp_stragglers_s": 3 * time,
            }
            for sampler, seed, accuracy, time in cells
        ]
    )
    summary = bench_sampling.summarize(runs).set_index("sampler")
    assert list(summary["seeds"]) == [2, 1]
    assert summary.loc["ugs", "accuracy_mean"] == pytest.approx(0.7)
    assert summary.loc["ugs", "sim_time_stragglers_s_mean"] == pytest.approx(24.0)
    assert summary.loc["ugs", "sim_time_s_std"] == pytest.approx(pd.Series([10.0, 14.0]).std())
    assert math.isnan(summary.loc["fls", "accuracy_std"])


def test_sampling_tasks_follow_the_presets_and_the_centralized_split_needs_none():
    bench = {"partitions": {"severe": ["extended-dirichlet", 2, 3.0]}}
    severe = bench_sampling.make_task(bench, "digits", "severe", 3)
    assert (severe.partitioner, severe.classes_per_client, severe.dirichlet_alpha) == (
        "extended-dirichlet",
        2,
        3.0,
    )
    central = bench_sampling.make_task(bench, "digits", "iid", 3)
    assert (central.partitioner, central.group_norm, central.seed) == ("iid", True, 3)


def test_matched_topk_keeps_the_most_values_within_the_budget():
    n = 16 * 1024
    spec = matched_topk(4748, n)
    k = round((1 - float(spec.split("=")[1])) * n)
    assert topk_nbytes(k, n) <= 4748 < topk_nbytes(k + 1, n)


@pytest.mark.slow  # three flwr runs on one SuperLink
def test_scale_benchmark_quick_trains_through_flwr_run_and_the_echoes_replay_its_steps(tmp_path):
    from sklearn.datasets import load_digits

    summary = bench_scale.main(
        ["--quick", "--epochs", "2", "--eval-every", "4", "--results", str(tmp_path)]
    )
    (row,) = summary.to_dict("records")
    assert (row["nodes"], row["participants"]) == (10, 5)
    assert row["sl_step_s"] > 0 and row["compute_s"] > 0
    assert min(row["echo_step_s"], row["echo_unpaced_step_s"]) > 0
    assert row["sl_peak_rss_gb"] > row["echo_peak_rss_gb"] > 0.1  # torch actors cost memory
    (out,) = (tmp_path / "bench_scale").iterdir()
    assert {"runs.csv", "summary.csv", "steps.csv", "scale.png", "env.json"} <= {
        p.name for p in out.iterdir()
    }
    steps = pd.read_csv(out / "steps.csv")
    assert sorted(steps["app"].unique()) == ["echo", "echo-paced", "flwr-split"]
    sl = steps[steps["app"] == "flwr-split"]
    history = pd.read_csv(out / "sl_n10_k5.csv")
    # every sample of digits is trained on once per epoch or evaluated once per evaluation
    per_epoch = sl.groupby("epoch")["samples"].sum()
    assert list(per_epoch.index) == [0, 1]
    assert (per_epoch + history["eval_samples"].iloc[0] == load_digits().target.size).all()
    assert (sl["clients"] <= 5).all() and (sl["samples"] <= 5 * 36).all()
    assert list(history["step"]) == [*range(4, len(sl), 4), len(sl)]
    runs = pd.read_csv(out / "runs.csv").set_index("app")
    assert runs.loc["flwr-split", "epochs"] == 2 and row["sl_steps"] == len(sl)
    assert row["sl_last_accuracy"] > 0.3  # 10 classes: chance is 0.1
    # the echoes send the SL run's messages step by step; the paced one idles its server time
    paced = list(sl["server_s"].fillna(0.0).round(4))
    for app in ("echo", "echo-paced"):
        echo = steps[steps["app"] == app]
        assert list(echo["messages"]) == list(sl["messages"])
        assert (echo["replied"] == echo["messages"]).all()
        assert (echo["client_compute_s"] == 0).all()
        assert list(echo["pause_s"]) == pytest.approx([0.0] * len(sl) if app == "echo" else paced)
    kinds = [c for c in runs.columns if c.startswith("peak_rss_gb_")]
    assert {"simulation", "superlink", "ray_worker", "ray_services"} <= {
        c.removeprefix("peak_rss_gb_") for c in kinds
    }
    assert (runs[kinds].sum(axis=1) >= runs["peak_rss_gb"] * (1 - 1e-9)).all()


@pytest.mark.slow  # a sweep of several runs, in worker processes
def test_fedlite_benchmark_quick_runs_the_grid_sweep_and_timing(tmp_path):
    runs = bench_fedlite.main(["--quick", "--workers", "1", "--results", str(tmp_path)])
    assert list(zip(runs["task"], runs["codec"], runs["correction"], strict=True)) == [
        ("digits", "identity", 0.0),
        ("digits", "fedlite:q=64,clusters=4", 0.0),
        ("digits", "fedlite:q=64,clusters=4", 1e-3),
        ("shakespeare", "identity", 0.0),
        ("shakespeare", "fedlite:q=80,clusters=2", 0.0),
    ]
    # 2 x 64 float32 codewords + 80 one-bit codes per 16 samples against 16 x 20,480 bytes
    assert runs["uplink_ratio"].iloc[-1] == pytest.approx(16 * 5120 * 4 / (512 + 160), rel=0.01)
    (out,) = (tmp_path / "bench_fedlite").iterdir()
    assert {p.name for p in out.iterdir()} == {
        "runs.csv",
        "ablation.csv",
        "timing.csv",
        "histories.csv",
        "accuracy_vs_bytes.png",
        "accuracy_vs_ratio.png",
        "env.json",
    }


def test_fedlite_probe_measures_distortion_and_the_best_correction_weight(tmp_path):
    specs = ["identity", "fedlite:q=64,clusters=4"]
    args = ["--task", "digits", "--clients", "2", "--batch", "8", "--steps", "2"]
    args += ["--probe-every", "2", *(f"--spec={spec}" for spec in specs)]
    frame = probe_fedlite.main([*args, "--results", str(tmp_path)])
    assert list(zip(frame["step"], frame["spec"], strict=True)) == [
        (0, specs[0]),
        (0, specs[1]),
    ] + [
        (2, specs[0]),
        (2, specs[1]),
    ]
    lossless, fedlite = frame[frame["spec"] == specs[0]], frame[frame["spec"] == specs[1]]
    assert (lossless[["relative_mse", "best_lambda"]] == 0).all().all()
    assert (lossless["grad_error_lambda0"] < 1e-5).all()  # same values, another buffer
    assert (lossless[["ratio", "top1_agreement"]] == 1).all().all()
    # 4 float32 codewords of 16 values + 64 two-bit codes per row, 8 rows of 1,024 floats
    assert (fedlite["ratio"] == 8 * 1024 * 4 / (4 * 16 * 4 + 8 * 64 * 2 / 8)).all()
    assert (fedlite["relative_mse"] > 0).all()
    # λ* minimizes |Δ − λ v| over λ, so the error there is never above the one at λ = 0
    assert (fedlite["grad_error_best_lambda"] <= fedlite["grad_error_lambda0"] + 1e-12).all()
    (out,) = (tmp_path / "probe_fedlite").iterdir()
    assert {p.name for p in out.iterdir()} == {"probe.csv", "probe.png", "env.json"}


def test_fedlite_benchmark_timing_only_trains_the_chosen_baseline_and_writes_the_timing(tmp_path):
    grid = "fedlite:q=64,clusters=4"
    args = ["--quick", "--timing-only", "--task", "digits", "--grid", grid, "--workers", "1"]
    timings = bench_fedlite.main([*args, "--results", str(tmp_path)])
    assert list(zip(timings["task"], timings["codec"], strict=True)) == [
        ("digits", "fedlite:q=64,clusters=4")
    ]
    assert (timings["encode_ms"] > 0).all()
    (out,) = (tmp_path / "bench_fedlite").iterdir()
    assert {p.name for p in out.iterdir()} == {"timing.csv", "histories.csv", "env.json"}
    assert set(pd.read_csv(out / "histories.csv")["codec"]) == {"identity"}


def test_fedlite_benchmark_keeps_the_histories_of_finished_runs_when_a_later_one_fails(tmp_path):
    config = tomllib.loads(bench_fedlite.DEFAULT_CONFIG.read_text())
    bench = {**config["bench"], **config["quick"]}
    digits = bench["tasks"][0]
    jobs = [bench_fedlite.Job(digits, "identity", 0.0), bench_fedlite.Job(digits, "nosuch", 0.0)]
    with pytest.raises(CodecError, match="unknown codec 'nosuch'"):
        bench_fedlite.train(jobs, bench, 1, tmp_path)
    history = pd.read_csv(tmp_path / "histories.csv")
    assert set(history["codec"]) == {"identity"} and len(history) > 0


@pytest.mark.parametrize(
    "path", sorted(bench_fedlite.DEFAULT_CONFIG.parent.glob("bench_fedlite*.toml")), ids=str
)
def test_every_fedlite_config_names_valid_tasks_and_codecs(path):
    bench = tomllib.loads(path.read_text())["bench"]
    for entry in bench["tasks"]:
        bench_fedlite.task_config(entry, bench["seed"])  # raises on a bad task entry
        for spec in entry["grid"]:
            get_codec(spec)


def test_digits_channels_last_config_sends_4_bits_per_position_at_102x():
    path = bench_fedlite.DEFAULT_CONFIG.parent / "bench_fedlite_digits_cl_b64.toml"
    bench = tomllib.loads(path.read_text())["bench"]
    (entry,) = bench["tasks"]
    task = bench_fedlite.task_config(entry, bench["seed"])
    shape = (bench["batch_size"], *builtin_cut_shape(task))
    assert shape == (64, 8, 8, 16)
    encoded = get_codec(entry["grid"][0]).encode(torch.rand(shape))
    raw = 64 * 1024 * 4
    assert Codec.nbytes(encoded) == 16 * 16 * 2 + 64 * 64 * 4 // 8 == raw / 102.4


@pytest.mark.slow  # a sampler sweep of several runs
def test_sampling_benchmark_quick_writes_tables_and_matches_the_inprocess_grid(tmp_path):
    runs = bench_sampling.main(["--quick", "--results", str(tmp_path)])
    assert set(runs["sampler"]) == {"centralized", "ugs", "lds", "fpls", "fls", "lds:c=0.01"}
    assert (runs["steps_per_epoch"][runs["sampler"] == "fls"] >= 45).all()
    (out,) = (tmp_path / "bench_sampling").iterdir()
    assert {p.name for p in out.iterdir()} == {
        "runs.csv",
        "summary.csv",
        "histories.csv",
        "crosscheck.csv",
        "table.md",
        "accuracy_vs_time.png",
        "env.json",
    }
    check = pd.read_csv(out / "crosscheck.csv").iloc[0]
    assert check["replay_accuracy"] == pytest.approx(check["inprocess_accuracy"], abs=1e-6)
    assert check["replay_mean_deviation"] == pytest.approx(check["inprocess_mean_deviation"])


@pytest.mark.slow  # a sweep of several runs
def test_slfac_benchmark_quick_matches_baseline_bytes_in_both_directions(tmp_path):
    runs = bench_slfac.main(["--quick", "--results", str(tmp_path)])
    assert list(runs["label"]) == [
        "fp32",
        "slfac",
        "topk",
        "powerquant",
        "splitfc",
        "theta=0.5",
        "hf_drop",
    ]
    slfac, baselines = runs.iloc[1], runs[runs["group"] == "baseline"]
    for column in ("activation_bytes", "gradient_bytes"):
        assert (baselines[column] <= 1.05 * slfac[column]).all()  # no baseline gets more bytes
    assert (runs["up_ratio"].iloc[1:] > 1).all() and (runs["down_ratio"].iloc[1:] > 1).all()
    (out,) = (tmp_path / "bench_slfac").iterdir()
    costs = pd.read_csv(out / "codecs.csv")
    assert set(costs["cut"]) == {1, 2} and (costs["transforms_ms"] > 0).all()
    per_cut = costs.groupby("cut")["transforms_ms"].nunique()
    assert (per_cut == 1).all()  # one transform time per tensor shape, beside every codec
    assert {p.name for p in out.iterdir()} == {
        "runs.csv",
        "histories.csv",
        "codecs.csv",
        "accuracy.png",
        "theta.png",
        "env.json",
    }


def test_matched_specs_fit_the_bits_per_value():
    specs = matched_specs(3.5, 4, features=16)
    assert specs == {
        "topk": "topk:ratio=0.9219",
        "powerquant": "powerquant:bits=3",
        "splitfc": "splitfc:keep=0.875,bits=4",
    }


def test_slfac_plan_runs_only_the_baselines_a_config_names():
    bench = {"fc_bits": 4, "sweep_partition": "dirichlet", "thetas": [0.5], "ablations": {}}
    every = bench_slfac.plan(bench, "iid", (3.5, 3.5), features=16)
    assert [run[1] for run in every] == ["topk", "powerquant", "splitfc"]
    some = bench_slfac.plan({**bench, "baselines": ["powerquant"]}, "iid", (3.5, 3.5), 16)
    assert some == [("baseline", "powerquant", "powerquant:bits=3", "powerquant:bits=3")]


def test_fedlite_benchmark_grid_option_keeps_known_settings_and_refuses_unknown_ones():
    tasks = [
        {"task": "digits", "grid": ["fedlite:q=64", "fedlite:q=32"], "sweep": ["fedlite:q=64"]},
        {"task": "shakespeare", "grid": ["fedlite:q=80"], "sweep": []},
    ]
    bench_fedlite.select_grid(tasks, ["fedlite:q=32"])
    assert [entry["grid"] for entry in tasks] == [["fedlite:q=32"], []]
    assert [entry["sweep"] for entry in tasks] == [[], []]
    with pytest.raises(SystemExit, match="not in the config's grids"):
        bench_fedlite.select_grid(tasks, ["fedlite:q=80,init=kmeans++"])


def test_fedlite_benchmark_refuses_a_sweep_setting_without_its_lambda_zero_run():
    tasks = [{"task": "digits", "grid": ["fedlite:q=64"], "sweep": ["fedlite:q=64"]}]
    bench_fedlite.check_sweeps(tasks)
    tasks.append({"task": "shakespeare", "grid": [], "sweep": ["fedlite:q=80"]})
    with pytest.raises(SystemExit, match=r"shakespeare: sweep \['fedlite:q=80'\] not in its grid"):
        bench_fedlite.check_sweeps(tasks)


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    stamp = "20261126-100000"
    monkeypatch.setattr(common.time, "strftime", lambda _: stamp)
    folders = [common.output_dir("bench_x", tmp_path) for _ in range(3)]
    assert [f.name for f in folders] == [stamp, f"{stamp}-2", f"{stamp}-3"]
    assert all(f.is_dir() and not any(f.iterdir()) for f in folders)


@pytest.mark.slow
def test_deploy_benchmark_quick_times_the_sl_app_and_the_torch_echo_on_supernodes(tmp_path):
    runs = bench_deploy.main(["--quick", "--results", str(tmp_path)])
    assert sorted(runs["app"]) == ["echo-torch", "flwr-split"]
    assert (runs["steps"] == 2).all() and (runs["step_s"] > 0).all()
    assert runs["ratio"].nunique() == 1 and runs["ratio"].iloc[0] > 0
    (out,) = (tmp_path / "bench_deploy").iterdir()
    steps = pd.read_csv(out / "steps.csv")
    assert (steps.loc[steps["app"] == "echo-torch", "replied"] == 1).all()  # one SuperNode
