"""The cross-method report: its methods, its table from known byte counts, and --quick."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pandas as pd
import pytest

from flwr_split.codecs import registered_codecs
from flwr_split.sampling import registered_samplers
from simulations import report
from simulations.report_table import method_label, method_table, read_runs
from strategies.registry import STRATEGIES

CONFIGS = sorted((Path(report.__file__).parent / "configs").glob("report*.toml"))


def fake_run(folder, name, *, uplink, downlink, accuracy, kinds, seed=0, sampler="fixed"):
    """Write a history and a traffic CSV with the given bytes per training kind (plus eval)."""
    direction = {"activations": "up", "gradients": "down", "labels": "up", "sync": "down"}
    rows = [
        {"step": 10, "phase": "train", "direction": direction[k], "kind": k, "nbytes": n}
        for k, n in kinds.items()
    ]
    rows.append({"step": 10, "phase": "eval", "direction": "up", "kind": "eval", "nbytes": 10**9})
    traffic = pd.DataFrame(rows)
    up = sum(n for k, n in kinds.items() if direction[k] == "up")
    history = pd.DataFrame(
        [
            {
                "step": 10,
                "epoch": 1,
                "accuracy": accuracy,
                "bytes_up": up,
                "bytes_down": sum(kinds.values()) - up,
                "wall_s": 3.0,
                "sim_time_s": 2.0 * sum(kinds.values()) / 1e6,
                "task": "digits",
                "task_seed": seed,
                "uplink": str({"id": uplink}),
                "downlink": str({"id": downlink}),
                "sampler": sampler,
                "num_clients": 4,
            }
        ]
    )
    history.to_csv(folder / f"{name}.csv", index=False)
    traffic.to_csv(folder / f"{name}_traffic.csv", index=False)


def test_the_table_sums_every_training_kind_and_compares_with_fp32(tmp_path):
    fp32 = {"activations": 600_000, "gradients": 300_000, "labels": 40_000, "sync": 60_000}
    fake_run(tmp_path, "base", uplink="identity", downlink="identity", accuracy=0.9, kinds=fp32)
    small = {"activations": 50_000, "gradients": 20_000, "labels": 10_000, "sync": 20_000}
    fake_run(tmp_path, "q_s0", uplink="quant", downlink="quant", accuracy=0.88, kinds=small)
    fake_run(tmp_path, "q_s1", uplink="quant", downlink="quant", accuracy=0.86, kinds=small, seed=1)
    fake_run(tmp_path, "t", uplink="topk", downlink="identity", accuracy=0.5, kinds=fp32)
    table = method_table(read_runs(tmp_path)).set_index("method")
    assert list(table.index) == ["fp32", "quant up+down", "topk up"]
    assert table.loc["fp32", "total_bytes"] == 1_000_000  # eval traffic left out
    quant = table.loc["quant up+down"]
    assert quant["total_bytes"] == 100_000
    assert quant["bytes_vs_fp32"] == pytest.approx(0.1)
    assert quant["compression"] == pytest.approx(10.0)
    assert quant["delta_pp"] == pytest.approx(-3.0)  # mean of 88 and 86 % against 90 %
    assert quant["accuracy_std"] == pytest.approx(1.0)
    assert quant["seeds"] == 2
    assert quant["time_vs_fp32"] == pytest.approx(0.1)
    assert (quant["labels_bytes"], quant["sync_bytes"]) == (10_000, 20_000)
    assert list(table["pareto"]) == [True, True, False]  # topk: as many bytes, less accurate


def test_runs_whose_traffic_disagrees_with_their_history_or_lack_fp32_are_refused(tmp_path):
    kinds = {"activations": 100, "gradients": 100, "labels": 0, "sync": 0}
    fake_run(tmp_path, "q", uplink="quant", downlink="identity", accuracy=0.5, kinds=kinds)
    with pytest.raises(ValueError, match="no fp32 SL run"):
        method_table(read_runs(tmp_path))
    traffic = pd.read_csv(tmp_path / "q_traffic.csv")
    traffic.loc[0, "nbytes"] += 1
    traffic.to_csv(tmp_path / "q_traffic.csv", index=False)
    with pytest.raises(ValueError, match="201 training bytes, but its history ends at 200"):
        read_runs(tmp_path)


def test_method_labels_name_what_differs_from_fp32_sl():
    assert method_label("identity", "identity", "fixed", "parallel") == ("fp32", "baseline")
    assert method_label("ms", "identity", "fixed", "parallel") == ("ms up", "codec")
    assert method_label("ms", "ms", "fixed", "parallel") == ("ms up+down", "codec")
    assert method_label("quant", "fp16", "fixed", "parallel") == ("quant up, fp16 down", "codec")
    assert method_label("identity", "identity", "lds", "parallel") == (
        "fp32, sampler lds",
        "sampler",
    )
    assert method_label("fp16", "identity", "ugs", "x") == (
        "fp16 up, sampler ugs, strategy x",
        "mixed",
    )


def test_methods_cover_every_codec_both_ways_every_other_strategy_and_sampler():
    bench = {"clients": 5}
    run_config = {"task": "digits", "batch-size": 8}
    overrides = report.methods(bench, run_config)
    codecs = [c for c in registered_codecs() if c != "identity"]
    samplers = [s for s in registered_samplers() if s != "fixed"]
    assert len(overrides) == 1 + 2 * len(codecs) + len(STRATEGIES.names()) - 1 + len(samplers)
    assert overrides[0] == {}
    assert {"uplink": "ms:ratio=0.99,bits=2"} in overrides  # digits' cut is after a ReLU
    assert {
        "uplink": "ms:ratio=0.99,bits=2",
        "downlink": "ms:ratio=0.99,bits=2,signed=true",
    } in overrides
    assert {"sampler": "ugs", "batch-size": 40} in overrides  # 5 clients x 8, the union batch
    assert report.methods({"clients": 5, "samplers": ["fixed:clients=2"]}, run_config)[-1] == {
        "sampler": "fixed:clients=2"
    }


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
def test_every_report_config_makes_valid_runs_fp32_first(path):
    tables = tomllib.loads(path.read_text())
    for bench in (tables["bench"], {**tables["bench"], **tables["quick"]}):
        configs = report.jobs(bench, seeds=2)
        names = [report.run_name(config) for config in configs]  # each a valid run config
        assert names[:2] == ["fp32_seed0", "fp32_seed1"]
        assert len(set(names)) == len(names)


@pytest.mark.slow
def test_quick_report_runs_every_method_and_from_reads_it_back(tmp_path):
    table = report.main(["--quick", "--results", str(tmp_path)])
    (out,) = (tmp_path / "report_digits").iterdir()
    assert {p.name for p in out.iterdir()} == {
        "runs",
        "runs.csv",
        "table.csv",
        "table.md",
        "pareto.png",
        "summary.md",
        "env.json",
    }
    assert len(table) == len(report.methods({"clients": 4}, {"task": "digits"}))
    base = table.set_index("method").loc["fp32"]
    assert (base["bytes_vs_fp32"], base["delta_pp"]) == (1.0, 0.0)
    assert base["accuracy"] > 50  # the quick run learns
    assert (table["total_bytes"] > 0).all() and table["accuracy"].between(0, 100).all()
    assert (out / "pareto.png").stat().st_size > 20_000
    assert "**fp32 SL**" in (out / "summary.md").read_text()
    assert (out / "table.md").read_text().count("\n") == len(table) + 2

    again = report.main(["--from", str(out), "--results", str(tmp_path / "again")])
    pd.testing.assert_frame_equal(again, table)
