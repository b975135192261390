"""The ``flwr-split`` command: run, deploy, report and benchmarks, as ``python -m simulations.*``.

``flwr-split run ...`` is ``python -m simulations.run ...``, ``flwr-split deploy``
is ``simulations.deploy``, ``flwr-split report`` is ``simulations.report`` and
``flwr-split bench NAME`` is ``simulations.bench_NAME``; each takes the same
options (``flwr-split run --help``).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Sequence

import simulations
from simulations.launcher import EXIT_USAGE

PROG = "flwr-split"
"""The console script's name ([project.scripts] in pyproject.toml)."""

COMMANDS = {
    "run": ("simulations.run", "the App on a local Ray simulation with live progress", ""),
    "deploy": ("simulations.deploy", "the App on a local SuperLink and SuperNodes", "--tls"),
    "report": ("simulations.report", "one report across codecs, strategies, samplers", "--quick"),
}
"""Subcommand: (module, what it runs, the example's arguments)."""


def benchmarks() -> list[str]:
    """Return the names of the ``simulations/bench_*.py`` benchmarks (``codecs``: bench_codecs)."""
    return sorted(
        info.name.removeprefix("bench_")
        for info in pkgutil.iter_modules(simulations.__path__)
        if info.name.startswith("bench_")
    )


def first_line(module: str) -> str:
    """Return the first line of ``module``'s docstring, without importing it."""
    spec = importlib.util.find_spec(module)
    source = spec.loader.get_source(module) if spec and spec.loader else None  # type: ignore[attr-defined]
    doc = ast.get_docstring(ast.parse(source)) if source else None
    return doc.splitlines()[0].removeprefix("Benchmark: ") if doc else ""


def bench_help() -> str:
    """Return the list of benchmarks, what each measures and an example each."""
    lines = ["usage: flwr-split bench NAME [--quick] [options of NAME]", "", "benchmarks:"]
    for name in benchmarks():
        lines.append(f"  {name:<13} {first_line(f'simulations.bench_{name}')}")
        lines.append(f"  {'':<13} e.g. flwr-split bench {name} --quick")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Return the top-level parser: one subcommand per entry point, an example each."""
    examples = [
        f"  flwr-split {name} {example}".rstrip() for name, (*_, example) in COMMANDS.items()
    ]
    examples += ["  flwr-split bench codecs --quick", "  flwr-split run --help"]
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Split learning on Flower: run, deploy, report and benchmark. "
        "COMMAND --help lists the options of COMMAND.",
        epilog="examples:\n" + "\n".join(examples),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, what, example) in COMMANDS.items():
        commands.add_parser(
            name, help=f"{what} (python -m {module}); e.g. flwr-split {name} {example}".rstrip()
        )
    commands.add_parser(
        "bench",
        help=f"a benchmark (python -m simulations.bench_NAME), NAME one of "
        f"{', '.join(benchmarks())}; e.g. flwr-split bench codecs --quick",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``flwr-split COMMAND ARGS...``; return the command's exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    top = parser()
    if not args or args[0] not in (*COMMANDS, "bench"):
        top.parse_args(args or ["--help"])  # prints the help, or names the bad command
        return EXIT_USAGE
    command, rest = args[0], args[1:]
    if command == "bench":
        if not rest or rest[0] in ("-h", "--help"):
            print(bench_help())
            return 0
        if rest[0] not in benchmarks():
            top.error(f"unknown benchmark {rest[0]!r}; one of {', '.join(benchmarks())}")
        command, module, rest = f"bench {rest[0]}", f"simulations.bench_{rest[0]}", rest[1:]
    else:
        module = COMMANDS[command][0]
    if importlib.util.find_spec(module) is None:
        top.error(f"'{command}' needs {module}, which this installation does not have")
    program, sys.argv[0] = sys.argv[0], f"{PROG} {command}"  # the command's usage names it
    try:
        code = importlib.import_module(module).main(rest)
    finally:
        sys.argv[0] = program
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    raise SystemExit(main())
