"""Run the App through `flwr run` on a local Ray simulation and print where the results are.

Usage: ``python -m simulations.run [--num-supernodes 10] [--run-config "uplink='fp16'"]``
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

from flwr_split.launch.simulation import SimulationSuperLink

ROOT = Path(__file__).resolve().parent.parent


def parse_overrides(text: str) -> dict[str, object]:
    """Parse ``key=value`` pairs (TOML values, space separated) into a dict."""
    pairs = re.findall(r"""[\w.-]+=(?:'[^']*'|"[^"]*"|\S+)""", text)
    return tomllib.loads("\n".join(pairs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-supernodes", type=int, default=10)
    parser.add_argument("--client-cpus", type=int, default=1, help="CPUs per ClientApp actor")
    parser.add_argument(
        "--run-config", default="", help="overrides, e.g. \"uplink='fp16' epochs=5\""
    )
    parser.add_argument("--output-dir", default="results/default", help="where CSV and PNG go")
    parser.add_argument("--flwr-home", default=".flwr-home", help="project-local FLWR_HOME")
    parser.add_argument("--timeout", type=float, default=3600.0)
    args = parser.parse_args(argv)

    run_config = {
        "min-nodes": args.num_supernodes,
        "output-dir": str(Path(args.output_dir).resolve()),
    }
    run_config.update(parse_overrides(args.run_config))
    with SimulationSuperLink(Path(args.flwr_home)) as superlink:
        done = superlink.run(ROOT, run_config, args.num_supernodes, args.client_cpus, args.timeout)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode != 0 or "final test accuracy" not in done.stdout:
        print(
            f"flwr run failed (exit {done.returncode}); SuperLink log: {superlink.log_path}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
