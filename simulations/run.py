"""Run the App through `flwr run` on a local Ray simulation, with live progress.

Usage: ``python -m simulations.run [--num-supernodes 10] [--run-config "uplink='fp16'"] [--quiet]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flwr_split.launch.simulation import SimulationSuperLink
from flwr_split.options.check import RunConfigError
from simulations.launcher import (
    ROOT,
    checked_run_config,
    launcher_parser,
    parse_overrides,
    usage_error,
    watched_run,
)

__all__ = ["main", "parse_overrides", "parser"]

EPILOG = """examples:
  python -m simulations.run
  python -m simulations.run --run-config "uplink='quant:bits=8' downlink='fp16' epochs=10"
  python -m simulations.run --num-supernodes 20 --run-config "sampler='ugs'" --quiet
"""


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``simulations.run``."""
    parser = launcher_parser(
        "simulations.run",
        __doc__,
        EPILOG,
        nodes=(10, "virtual clients (Ray simulation SuperNodes)"),
        flwr_home=".flwr-home",
        output_dir="results/runs",
    )
    parser.add_argument(
        "--client-cpus",
        type=int,
        default=1,
        help="CPUs per ClientApp actor, e.g. --client-cpus 2 (default: 1)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulation; return the exit code (see `simulations.launcher`)."""
    args = parser().parse_args(argv)
    launcher_config = {
        "min-nodes": args.num_supernodes,
        "output-dir": str(Path(args.output_dir).resolve()),
    }
    try:
        run_config = checked_run_config(args, launcher_config)
    except RunConfigError as exc:
        return usage_error(exc)
    superlink = SimulationSuperLink(Path(args.flwr_home))
    return watched_run(
        superlink,
        args.quiet,
        lambda watch: superlink.run(
            ROOT, run_config, args.num_supernodes, args.client_cpus, args.timeout, on_line=watch
        ),
    )


if __name__ == "__main__":
    raise SystemExit(main())
