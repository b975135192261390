"""``python -m flwr_split.launch.ray_nodes``: a Ray head and workers on 127.0.0.1 until SIGTERM.

`flwr_split.launch.ray_cluster.RayCluster` runs this module as one process of
its own. Ray's command line cannot build such a cluster on Linux: ``ray start``
turns a node address of 127.0.0.1 into the machine's own address, and Ray's
servers then listen on every interface; with `RAY_ON_LOOPBACK` in the
environment it keeps 127.0.0.1, but refuses to start worker nodes. Ray's own
cluster for multi-node tests on one machine (``ray.cluster_utils.Cluster``)
starts the nodes without that check: the head's GCS and each node's raylet and
agents, all on 127.0.0.1 when `RAY_ON_LOOPBACK` is set.

It prints one ``node <name> <node id>`` line per node (``ray-head``,
``ray-worker-<i>``), ``address <GCS address>`` (its port chosen by the system,
so no other process can take it in between), then `STARTED`, and stops every
node on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

RAY_ON_LOOPBACK = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
"""Environment that keeps a Ray started on this machine on 127.0.0.1.

On Linux Ray takes the address of the default route as the node's address, even
for ``127.0.0.1``, and then binds its GCS, raylets and workers to every
interface; they bind to 127.0.0.1 only when the node address is exactly that.
This switch (meant for Ray on Windows and macOS, where it is the default) makes
Ray use 127.0.0.1 as the address of this machine. Ray reads it when imported.
"""
STARTED = "Ray nodes started."
"""What this module prints once every node has joined."""


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2, help="nodes including the head")
    parser.add_argument("--cpus-per-node", type=int, default=1)
    parser.add_argument("--object-store-bytes", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Start the nodes, print their ids, and wait for SIGTERM or SIGINT to stop them."""
    args = _parse(argv)
    if "ray" in sys.modules:
        raise RuntimeError("Ray was imported before RAY_ON_LOOPBACK was set; run this as a module")
    os.environ.update(RAY_ON_LOOPBACK)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    from ray.cluster_utils import Cluster

    node_args = {
        "node_ip_address": "127.0.0.1",
        "num_cpus": args.cpus_per_node,
        "object_store_memory": args.object_store_bytes,
    }
    cluster = Cluster(shutdown_at_exit=False)
    try:
        names = ["ray-head"] + [f"ray-worker-{index}" for index in range(1, args.nodes)]
        for name in names:
            extra = {"include_dashboard": False} if name == "ray-head" else {}
            node = cluster.add_node(**node_args, **extra)
            print(f"node {name} {node.node_id}", flush=True)
        print(f"address {cluster.address}", flush=True)
        print(STARTED, flush=True)
        stop.wait()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
