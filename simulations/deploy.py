"""Run the App on a real local deployment: one SuperLink and N SuperNodes on 127.0.0.1.

Usage: ``python -m simulations.deploy [--num-supernodes 3] [--tls | --certs DIR] [--node-auth]
[--run-config "max-steps=20 uplink='fp16'"] [--output-dir results/deploy]``

Every process is stopped on exit (also on Ctrl-C or failure). Logs, certificates
and keys stay in ``--flwr-home``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from flwr_split.launch.deployment import Certificates, DeploymentCluster
from simulations.run import parse_overrides

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-supernodes", type=int, default=3)
    parser.add_argument("--tls", action="store_true", help="HTTPS with a generated private CA")
    parser.add_argument(
        "--certs",
        type=Path,
        help="use DIR/ca.crt, DIR/server.pem, DIR/server.key instead of new ones (implies --tls)",
        metavar="DIR",
    )
    parser.add_argument(
        "--node-auth",
        action="store_true",
        help="SuperNode authentication with registered keys (implies --tls)",
    )
    parser.add_argument(
        "--run-config", default="", help="overrides, e.g. \"max-steps=20 uplink='fp16'\""
    )
    parser.add_argument("--output-dir", default="results/deploy", help="where CSV and PNG go")
    parser.add_argument("--run-name", default="deploy", help="name of the result files")
    parser.add_argument(
        "--flwr-home", default=".flwr-home/deploy", help="FLWR_HOME: config, logs, certificates"
    )
    parser.add_argument(
        "--task-poll-interval",
        type=float,
        default=0.1,
        help="FLWR_SUPEREXEC_TASK_POLL_INTERVAL in seconds (Flower's default is 1)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds for `flwr run`")
    args = parser.parse_args(argv)

    output_dir = Path(args.output_dir).resolve()
    run_config: dict[str, object] = {
        "min-nodes": args.num_supernodes,
        "output-dir": str(output_dir),
        "run-name": args.run_name,
    }
    run_config.update(parse_overrides(args.run_config))
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
    try:
        with cluster:
            mode = "TLS + node auth" if cluster.node_auth else "TLS" if cluster.tls else "insecure"
            print(
                f"SuperLink on {cluster.address} ({mode}), {args.num_supernodes} SuperNodes "
                f"up in {time.perf_counter() - started:.1f} s; logs in {cluster.flwr_home}",
                flush=True,
            )
            done = cluster.run(ROOT, run_config, timeout=args.timeout)
    except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
        print(f"deployment failed: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    history = output_dir / f"{run_config['run-name']}.csv"
    if done.returncode != 0 or "final test accuracy" not in done.stdout or not history.exists():
        print(
            f"flwr run failed (exit {done.returncode}); logs in {cluster.flwr_home}",
            file=sys.stderr,
        )
        return 1
    print(
        f"results: {history} (and {history.stem}_traffic.csv, {history.stem}.png); "
        f"wall {time.perf_counter() - started:.1f} s; logs in {cluster.flwr_home}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
