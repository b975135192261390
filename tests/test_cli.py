"""The ``flwr-split`` console script: subcommands, their help, and the entry point."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

import simulations.bench_step_time
import simulations.deploy
import simulations.run
from simulations import cli

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_installs_flwr_split_as_the_cli_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, function = scripts["flwr-split"].split(":")
    assert (module, function) == ("simulations.cli", "main") and callable(cli.main)


def test_help_lists_every_subcommand_with_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "deploy", "report", "bench"):
        assert f"e.g. flwr-split {command}" in out, command
    for name in cli.benchmarks():
        assert name in out


@pytest.mark.parametrize("command", ["run", "deploy"])
def test_every_option_of_run_and_deploy_has_help_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    parser = getattr(simulations, command).parser()
    for action in parser._actions:
        if action.dest != "help":
            assert action.help and "e.g. " in action.help, action.dest
            assert action.option_strings[0] in out
    assert "examples:" in out and out.startswith(f"usage: flwr-split {command} ")


def test_bench_lists_every_benchmark_with_an_example(capsys):
    assert cli.main(["bench"]) == 0
    out = capsys.readouterr().out
    expected = sorted(p.stem[6:] for p in (ROOT / "simulations").glob("bench_*.py"))
    assert cli.benchmarks() == expected
    for name in expected:
        assert f"flwr-split bench {name} --quick" in out


@pytest.mark.parametrize(
    ("argv", "module", "rest"),
    [
        (
            ["run", "--quiet", "--num-supernodes", "3"],
            simulations.run,
            ["--quiet", "--num-supernodes", "3"],
        ),
        (["deploy", "--tls"], simulations.deploy, ["--tls"]),
        (["bench", "step_time", "--quick"], simulations.bench_step_time, ["--quick"]),
    ],
)
def test_a_subcommand_runs_its_modules_main_with_the_rest_and_returns_its_code(
    argv, module, rest, monkeypatch
):
    calls = []
    monkeypatch.setattr(module, "main", lambda args: calls.append(args) or 7)
    assert cli.main(argv) == 7 and calls == [rest]


def test_report_runs_simulations_report_and_its_usage_names_the_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["report", "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage: flwr-split report ")
    assert sys.argv[0] != "flwr-split report"  # restored


@pytest.mark.parametrize("argv", [["nosuch"], ["bench", "nosuch"]])
def test_an_unknown_command_or_benchmark_is_a_usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    assert "nosuch" in capsys.readouterr().err


def test_the_module_runs_as_a_script(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["flwr-split", "bench", "--help"])
    assert cli.main() == 0
    assert "benchmarks:" in capsys.readouterr().out
