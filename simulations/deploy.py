"""Run the App on a real local deployment: one SuperLink and N SuperNodes on 127.0.0.1.

Usage: ``python -m simulations.deploy [--num-supernodes 3] [--tls | --certs DIR] [--node-auth]
[--run-config "max-steps=20 uplink='fp16'"] [--output-dir results/deploy] [--quiet]``

A deployment step takes seconds (a fresh ClientApp process per message, see
docs/deployment.md), so the launcher runs `DEMO_RUN_CONFIG` (a few steps, a few
minutes) unless ``--run-config`` sets ``max-steps``, ``eval-every`` or ``epochs``:
``--run-config "max-steps=0"`` runs the full ``epochs``. Every process is
stopped on exit (also on Ctrl-C or failure). Logs, certificates and keys stay
in ``--flwr-home``.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

from flwr_split.launch.deployment import Certificates, DeploymentCluster
from flwr_split.options.check import RunConfigError
from simulations.launcher import (
    ROOT,
    RunWatch,
    checked_run_config,
    launcher_parser,
    usage_error,
    watched_run,
)

DEMO_RUN_CONFIG = {"max-steps": 3, "eval-every": 3}
"""What a deployment runs unless ``--run-config`` sets one of these keys or ``epochs``: 3 steps,
one evaluation."""

EPILOG = """examples:
  python -m simulations.deploy                                  # 3 SuperNodes, 3 steps
  python -m simulations.deploy --num-supernodes 2 --tls         # HTTPS with a private CA
  python -m simulations.deploy --node-auth                      # TLS + SuperNode authentication
  python -m simulations.deploy --run-config "max-steps=0 epochs=1"  # a full epoch (slow)
"""


def parser() -> argparse.ArgumentParser:
    """Return the command-line parser of ``simulations.deploy``."""
    parser = launcher_parser(
        "simulations.deploy",
        __doc__,
        EPILOG,
        nodes=(3, "SuperNodes, one data partition each"),
        flwr_home=".flwr-home/deploy",
        output_dir="results/deploy",
    )
    parser.add_argument(
        "--tls", action="store_true", help="HTTPS with a generated private CA, e.g. --tls"
    )
    parser.add_argument(
        "--certs",
        type=Path,
        metavar="DIR",
        help="use DIR/ca.crt, DIR/server.pem, DIR/server.key instead of new ones (implies "
        "--tls), e.g. --certs certs/",
    )
    parser.add_argument(
        "--node-auth",
        action="store_true",
        help="SuperNode authentication with registered keys (implies --tls), e.g. --node-auth",
    )
    parser.add_argument(
        "--task-poll-interval",
        type=float,
        default=0.1,
        help="FLWR_SUPEREXEC_TASK_POLL_INTERVAL in seconds (Flower's default is 1), "
        "e.g. --task-poll-interval 1 (default: 0.1)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the deployment; return the exit code (see `simulations.launcher`)."""
    args = parser().parse_args(argv)
    launcher_config = {
        "min-nodes": args.num_supernodes,
        "output-dir": str(Path(args.output_dir).resolve()),
    }
    try:
        run_config = checked_run_config(args, launcher_config, DEMO_RUN_CONFIG)
    except RunConfigError as exc:
        return usage_error(exc)
    certificates = None
    if args.certs is not None:
        folder = args.certs.resolve()
        certificates = Certificates(folder / "ca.crt", folder / "server.pem", folder / "server.key")
    cluster = DeploymentCluster(
        Path(args.flwr_home),
        args.num_supernodes,
        tls=args.tls or args.node_auth,
        certificates=certificates,
        node_auth=args.node_auth,
        task_poll_interval=args.task_poll_interval,
    )
    started = time.perf_counter()

    def run(watch: RunWatch) -> subprocess.CompletedProcess[str]:
        mode = "TLS + node auth" if cluster.node_auth else "TLS" if cluster.tls else "insecure"
        print(
            f"SuperLink on {cluster.address} ({mode}), {args.num_supernodes} SuperNodes "
            f"up in {time.perf_counter() - started:.1f} s; logs in {cluster.flwr_home}",
            flush=True,
        )
        return cluster.run(ROOT, run_config, timeout=args.timeout, on_line=watch)

    return watched_run(cluster, args.quiet, run)


if __name__ == "__main__":
    raise SystemExit(main())
