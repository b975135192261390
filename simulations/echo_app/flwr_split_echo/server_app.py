"""Echo ServerApp: a warm-up round to every node, then timed steps of round trips without work.

Step ``t`` sends one message to each of ``messages[t]`` nodes (the run config's
comma-separated ``messages``, e.g. an SL run's per-step counts; else
``participants`` per step), consecutive groups of nodes taking turns. With
``pauses`` (comma-separated seconds, e.g. an SL run's per-step server time),
the App idles ``pauses[t]`` before step ``t``, untimed: Flower's simulation
engine looks for new messages every 0.1 s, so the time a round trip waits
depends on how long the ServerApp was busy before it, and an SL step's floor is
an echo step after the same pause. Messages are empty, or with ``payload="sl"``
carry the records of an SL step (`flwr_split_echo.shaped`); with ``busy``
(seconds) each reply is sent after computing that long, like an SL client's,
and the row's ``client_compute_s`` sums the compute the replies report. It uses the same
node wait and push/pull loop as the SL strategies
(`flwr_split.server.nodes`), so the difference between an SL step and an echo
step is what flwr-split adds on top of Flower. Writes
``<output-dir>/<run-name>_steps.csv`` with one row per step, after every step; each row
also holds the warm-up round's wall time and replies (``warmup_s``, ``warmup_replied``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from flwr.app import Context, Message, RecordDict
from flwr.serverapp import Grid, ServerApp

from flwr_split.server.nodes import exchange, wait_for_nodes

app = ServerApp()


def step_nodes(nodes: list[int], first: int, count: int) -> list[int]:
    """Return ``count`` consecutive nodes from index ``first``, wrapping around."""
    return [nodes[(first + i) % len(nodes)] for i in range(min(count, len(nodes)))]


def listed_values(config: dict, key: str, kind: type) -> list:
    """Return the run config's comma-separated ``key`` as a list of ``kind`` (empty if unset)."""
    listed = str(config.get(key, "")).strip()
    return [kind(value) for value in listed.split(",")] if listed else []


def messages_per_step(config: dict) -> list[int]:
    """Return the per-step message counts: ``messages`` if given, else ``participants`` each."""
    counts = listed_values(config, "messages", int)
    return counts or [int(config["participants"])] * int(config["steps"])


def pauses_per_step(config: dict, steps: int) -> list[float]:
    """Return the untimed pause before each step: ``pauses`` if given (cycled), else zeros."""
    pauses = listed_values(config, "pauses", float) or [0.0]
    return [pauses[step % len(pauses)] for step in range(steps)]


def _round_trip(
    grid: Grid, nodes: list[int], message_type: str, timeout: float, content: RecordDict
) -> tuple[int, float]:
    """Send ``content`` to each node; return how many replied without error and their compute.

    The compute is the sum of the ``compute_s`` the replies report in ``sl.info`` (0 if none).
    """
    messages = [Message(content, dst_node_id=n, message_type=message_type) for n in nodes]
    good = [reply for reply in exchange(grid, messages, timeout).values() if not reply.has_error()]
    compute = sum(
        float(reply.content["sl.info"]["compute_s"]) for reply in good if "sl.info" in reply.content
    )
    return len(good), compute


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Wait for the nodes, warm every node up once, then run and time the steps."""
    config = context.run_config
    timeout = float(config["step-timeout"])
    nodes = wait_for_nodes(grid, int(config["min-nodes"]), timeout)
    started = time.perf_counter()
    warm, _ = _round_trip(grid, nodes, "query.echo_hello", timeout, RecordDict())
    warmup = {"warmup_s": time.perf_counter() - started, "warmup_replied": warm}
    print(
        f"warm-up: {warm} of {len(nodes)} nodes replied in {warmup['warmup_s']:.1f} s", flush=True
    )
    content = RecordDict()
    if config.get("payload", "empty") == "sl":
        from flwr_split_echo.shaped import step_content  # torch only when asked for

        content = step_content(int(config["batch-size"]))
    rows, first = [], 0
    out = Path(str(config["output-dir"])).resolve()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{config['run-name']}_steps.csv"
    counts = messages_per_step(config)
    pauses = pauses_per_step(config, len(counts))
    for step, (count, pause) in enumerate(zip(counts, pauses, strict=True)):
        chosen = step_nodes(nodes, first, count)
        first += count
        time.sleep(pause)
        started = time.perf_counter()
        replied, compute = _round_trip(grid, chosen, "train.echo_step", timeout, content)
        rows.append(
            {
                "step": step,
                "clients": len(chosen),
                "messages": len(chosen),
                "replied": replied,
                "pause_s": pause,
                "wall_s": time.perf_counter() - started,
                "client_compute_s": compute,
                **warmup,
            }
        )
        pd.DataFrame(rows).to_csv(path, index=False)
    print(f"echo done; steps in {path}", flush=True)
