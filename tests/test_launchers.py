"""The launchers (simulations.run, .deploy): checks before anything starts, exit codes, verdicts."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

import simulations.deploy
import simulations.launcher
import simulations.run
from flwr_split.launch.run_log import failure_line, result_line
from flwr_split.options.check import RunConfigError, check_run_config
from flwr_split.server.progress import PROGRESS_ENV, Progress
from simulations.launcher import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    parse_overrides,
)

# (--run-config, what the one-line message must name: the bad value and the fix)
MISTAKES = [
    ("epoch=3", ["'epoch'", "did you mean 'epochs'"]),
    ("uplink='nosuch'", ["uplink='nosuch'", "known: ", "fp16"]),
    ("uplink='quant:bits=99'", ["uplink='quant:bits=99'", "1..16", "99"]),
    ("downlink='topk:ratio=2'", ["downlink='topk:ratio=2'"]),
    ("sampler='nosuch'", ["sampler='nosuch'", "known: ", "ugs"]),
    ("sampler='lds:c=-1'", ["sampler='lds:c=-1'", "> 0"]),
    ("min-nodes=3", ["min-nodes=3", "2 nodes", "--num-supernodes 3", "min-nodes=2"]),
    ("task='nosuch'", ["'nosuch'", "known: ", "digits"]),
    ("cut=7", ["cuts [1, 2]", "got 7"]),
    ("sync='sometimes'", ["'sync'", "every_epoch", "'sometimes'"]),
    ("epochs='many'", ["'epochs'", "int", "'many'"]),
    ("epochs 3", ["'epochs 3'", "key=value"]),
    ("uplink=fp16", ["uplink=fp16", "quoted"]),
]


class NoFlower:
    """Stands in for the SuperLink / cluster classes: starting one fails the test."""

    def __init__(self, *args, **kwargs):
        raise AssertionError("a Flower process was started for a bad run config")


@pytest.fixture
def no_flower(monkeypatch):
    monkeypatch.setattr(simulations.run, "SimulationSuperLink", NoFlower)
    monkeypatch.setattr(simulations.deploy, "DeploymentCluster", NoFlower)


@pytest.mark.parametrize(("text", "names"), MISTAKES, ids=[m[0] for m in MISTAKES])
@pytest.mark.parametrize("launcher", [simulations.run, simulations.deploy], ids=["run", "deploy"])
def test_a_mistake_ends_in_one_line_naming_value_and_fix_before_anything_starts(
    launcher, text, names, no_flower, capsys
):
    code = launcher.main(["--num-supernodes", "2", "--run-config", text])
    out, err = capsys.readouterr()
    assert code == EXIT_USAGE and out == ""
    assert err.startswith("error: ") and "run-config" in err.replace(" ", "-")
    assert err.count("\n") == 1, err
    for name in names:
        assert name in err, (name, err)


def test_a_good_run_config_passes_and_gives_the_settings():
    settings = check_run_config({"uplink": "quant:bits=8", "min-nodes": 4}, num_nodes=4)
    assert settings.strategy["uplink"] == "quant:bits=8"
    with pytest.raises(RunConfigError, match="min-nodes=5"):
        check_run_config({"min-nodes": 5}, num_nodes=4)
    check_run_config({"min-nodes": 5})  # no node count: not checked


def test_run_overrides_keep_quoted_values_with_spaces():
    assert parse_overrides("uplink='quant:bits=8' run-name='a b' epochs=3 lr=0.1") == {
        "uplink": "quant:bits=8",
        "run-name": "a b",
        "epochs": 3,
        "lr": 0.1,
    }
    assert parse_overrides("") == {}


class FakeSuperLink:
    """A SimulationSuperLink that prints ``lines`` instead of running Flower."""

    lines: list[str] = []
    returncode = 0
    raises: BaseException | None = None
    sends: signal.Signals | None = None  # a signal that arrives while the run runs
    seen: dict = {}

    def __init__(self, flwr_home: Path):
        self.flwr_home = Path(flwr_home).resolve()
        self.log_path = self.flwr_home / "superlink.log"
        self.env: dict[str, str] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        FakeSuperLink.seen["stopped"] = True

    def run(self, app_dir, run_config, num_supernodes, client_cpus, timeout, on_line):
        FakeSuperLink.seen.update(run_config=run_config, env=dict(self.env))
        for line in self.lines:
            on_line(line)
        if self.sends is not None:
            signal.raise_signal(self.sends)
        if self.raises is not None:
            raise self.raises
        return subprocess.CompletedProcess(["flwr"], self.returncode, "".join(self.lines), "")


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setattr(simulations.run, "SimulationSuperLink", FakeSuperLink)
    FakeSuperLink.lines, FakeSuperLink.returncode, FakeSuperLink.raises = [], 0, None
    FakeSuperLink.sends = None
    FakeSuperLink.seen = {}

    def run(*extra: str) -> int:
        return simulations.run.main(["--flwr-home", str(tmp_path / "home"), *extra])

    return run


RESULT = result_line(
    {"accuracy": 0.9, "steps": 4, "bytes": 2_000_000, "files": {"history": "/r/x.csv"}}
)


def test_a_finished_run_exits_0_with_a_summary_and_progress_from_the_serverapp(fake, capsys):
    FakeSuperLink.lines = [
        "\x1b[93mWARNING \x1b[0m:   Since flwr 1.32, default simulated SuperNodes changed "
        "from 10 to 2.\n",
        Progress(2, 4, 0, 1, 1_000_000, 1.0).to_line() + "\n",
        "INFO :      step 4 epoch 0: accuracy 0.9000\n",
        Progress(4, 4, 0, 1, 2_000_000, 2.0, "accuracy", 0.9, True).to_line() + "\n",
        RESULT + "\n",
    ]
    assert fake() == EXIT_OK
    out, err = capsys.readouterr()
    assert FakeSuperLink.seen["env"] == {PROGRESS_ENV: "1"}
    assert "step 4 epoch 0: accuracy 0.9000" in out and "SuperNodes changed" not in out + err
    assert "done in" in out and "4 steps, 2.0 MB" in out and "/r/x.csv" in out
    assert "step 4/4" in err and "accuracy 0.9000" in err  # the bar (off a terminal: lines)
    assert "flwr-split:" not in out + err
    assert FakeSuperLink.seen["run_config"]["min-nodes"] == 10


def test_off_a_terminal_flowers_log_lines_come_without_colour_codes(fake, capsys):
    FakeSuperLink.lines = [
        "\x1b[92mINFO \x1b[0m:      step 4 epoch 0: accuracy 0.9000\n",
        RESULT + "\n",
    ]
    assert fake("--quiet") == EXIT_OK
    out = capsys.readouterr().out
    assert "INFO :      step 4 epoch 0: accuracy 0.9000\n" in out and "\x1b" not in out


def test_a_serverapp_failure_exits_1_even_if_flwr_run_exits_0(fake, capsys):
    FakeSuperLink.lines = [failure_line(MemoryError("Unable to allocate 3.64 TiB")) + "\n"]
    assert fake("--quiet") == EXIT_FAILED
    err = capsys.readouterr().err
    assert (
        err.strip()
        .splitlines()[-1]
        .startswith("error: the ServerApp failed: MemoryError: Unable to allocate 3.64 TiB; logs: ")
    )
    assert "exit 0" not in err


def test_no_result_line_is_a_failure_and_flwr_runs_own_code_is_named(fake, capsys):
    assert fake("--quiet") == EXIT_FAILED
    assert "ended without writing results" in capsys.readouterr().err
    FakeSuperLink.lines, FakeSuperLink.returncode = [RESULT + "\n"], 1
    assert fake("--quiet") == EXIT_FAILED
    assert "flwr run exited with code 1" in capsys.readouterr().err


def test_ctrl_c_stops_everything_and_exits_130_without_a_traceback(fake, capsys):
    FakeSuperLink.raises = KeyboardInterrupt()
    assert fake("--quiet") == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert err.startswith("interrupted:") and "Traceback" not in err
    assert FakeSuperLink.seen["stopped"]


def test_ctrl_c_stops_the_run_also_if_the_launcher_started_with_sigint_ignored(fake, capsys):
    """A shell without job control starts background commands so (the CI run that hung)."""
    FakeSuperLink.sends = signal.SIGINT
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        code = fake("--quiet")
        after = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert code == EXIT_INTERRUPTED, capsys.readouterr()
    assert capsys.readouterr().err.startswith("interrupted:") and FakeSuperLink.seen["stopped"]
    assert after == signal.SIG_IGN  # handed back as it was


def test_sigterm_stops_everything_and_exits_143_without_a_traceback(fake, capsys):
    """``kill``, ``timeout`` or a cancelled CI job: the SuperLink and Ray (own sessions) stop."""
    FakeSuperLink.sends = signal.SIGTERM
    inherited = signal.getsignal(signal.SIGTERM)
    assert fake("--quiet") == EXIT_TERMINATED
    err = capsys.readouterr().err
    assert err.startswith("terminated:") and "Traceback" not in err
    assert FakeSuperLink.seen["stopped"]
    assert signal.getsignal(signal.SIGTERM) == inherited


def test_a_timeout_is_a_failure_that_names_the_option(fake, capsys):
    FakeSuperLink.raises = subprocess.TimeoutExpired(["flwr"], 1.0)
    assert fake("--quiet", "--timeout", "1") == EXIT_FAILED
    assert "--timeout" in capsys.readouterr().err


DEMO = simulations.deploy.DEMO_RUN_CONFIG


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {**DEMO, "epochs": None}),
        ("uplink='fp16'", {**DEMO, "epochs": None}),
        ("max-steps=0", {"max-steps": 0, "eval-every": None, "epochs": None}),
        ("epochs=1", {"max-steps": None, "eval-every": None, "epochs": 1}),
    ],
)
def test_the_deploy_launcher_runs_a_short_demo_unless_told_how_long(text, expected, monkeypatch):
    seen = {}

    def check(run_config, num_nodes):
        seen.update(run_config, num_nodes=num_nodes)
        raise RunConfigError("stop here")

    monkeypatch.setattr(simulations.launcher, "check_run_config", check)
    assert simulations.deploy.main(["--run-config", text]) == EXIT_USAGE
    assert {key: seen.get(key) for key in expected} == expected
    assert DEMO["max-steps"] <= 10
    assert seen["min-nodes"] == seen["num_nodes"] == 3
