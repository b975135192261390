"""Run the App through `flwr run` on a local Ray simulation, with live progress.

Usage: ``python -m simulations.run [--num-supernodes 10] [--run-config "uplink='fp16'"] [--quiet]``
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from flwr_split.launch.simulation import SimulationSuperLink
from flwr_split.options.check import RunConfigError
from simulations.launcher import (
    ROOT,
    RunWatch,
    add_run_arguments,
    checked_run_config,
    interrupted,
    parse_overrides,
    usage_error,
)

__all__ = ["main", "parse_overrides"]

EPILOG = """examples:
  python -m simulations.run
  python -m simulations.run --run-config "uplink='quant:bits=8' downlink='fp16' epochs=10"
  python -m simulations.run --num-supernodes 20 --run-config "sampler='ugs'" --quiet
"""


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``simulations.run``."""
    parser = argparse.ArgumentParser(
        prog="python -m simulations.run",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--num-supernodes",
        type=int,
        default=10,
        help="virtual clients (Ray simulation SuperNodes), e.g. --num-supernodes 20 (default: 10)",
    )
    parser.add_argument(
        "--client-cpus",
        type=int,
        default=1,
        help="CPUs per ClientApp actor, e.g. --client-cpus 2 (default: 1)",
    )
    parser.add_argument(
        "--flwr-home",
        default=".flwr-home",
        help="project-local FLWR_HOME for config and logs, e.g. --flwr-home /tmp/fh "
        "(default: .flwr-home)",
    )
    add_run_arguments(parser, output_dir="results/runs", timeout=3600.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the simulation; return the exit code (see `simulations.launcher`)."""
    args = parser().parse_args(argv)
    launcher_config = {
        "min-nodes": args.num_supernodes,
        "output-dir": str(Path(args.output_dir).resolve()),
    }
    try:
        overrides = parse_overrides(args.run_config)
        run_config = checked_run_config(overrides, launcher_config, args.num_supernodes)
    except RunConfigError as exc:
        return usage_error(exc)
    watch = RunWatch(quiet=args.quiet)
    superlink = SimulationSuperLink(Path(args.flwr_home))
    watch.attach(superlink)
    done = None
    try:
        with superlink:
            done = superlink.run(
                ROOT,
                run_config,
                args.num_supernodes,
                args.client_cpus,
                args.timeout,
                on_line=watch,
            )
    except subprocess.TimeoutExpired:
        pass
    except KeyboardInterrupt:
        return interrupted(superlink.flwr_home)
    except (OSError, RuntimeError, TimeoutError) as exc:
        return watch.fail(f"the SuperLink did not start: {exc}", superlink.flwr_home)
    return watch.finish(done, superlink.flwr_home)


if __name__ == "__main__":
    raise SystemExit(main())
