"""Benchmark: what an SL step's records cost in a Ray actor call, with and without client compute.

Usage: ``python -m simulations.bench_ray_records [--calls 300] [--busy 0 0.0018] [--quick]``

Flower's simulation hands every message and its node's ``Context`` to a Ray
actor and gets the reply and the context back. This benchmark makes that call
alone, without Flower's engine, to one actor (one CPU), with four contents
built by the SL-shaped echo (`flwr_split_echo.shaped`, the records of a real
digits step at batch 2): ``empty`` (empty message, empty state), ``message``
(the step's records both ways, empty state), ``state`` (empty messages, an SL
client's ``context.state``) and ``sl`` (both). With ``busy`` > 0 the actor
first trains the digits bottom that long (`busy_compute`), as an SL client
computes. The overhead of a call is its round trip minus the time spent in
the actor's method; variants take turns, call by call. Writes ``calls.csv``,
``summary.csv``, ``ray_records.png`` and ``env.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from types import ModuleType

import matplotlib

from flwr_split.launch.ray_nodes import RAY_ON_LOOPBACK

os.environ.update(RAY_ON_LOOPBACK)  # before Ray is imported: it reads this once

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import ray  # noqa: E402
from flwr.app import Context, Message, RecordDict  # noqa: E402
from flwr.supercore.task_identity import TaskIdentity  # noqa: E402

from simulations.common import ECHO_APP, output_dir, save_figure, write_env  # noqa: E402

VARIANTS = ("empty", "message", "state", "sl")
BATCH = 2


def _shaped() -> ModuleType:
    """Import `flwr_split_echo.shaped` from the echo App's folder."""
    if str(ECHO_APP) not in sys.path:
        sys.path.insert(0, str(ECHO_APP))
    from flwr_split_echo import shaped

    return shaped


def _set_identity(node_id: int) -> None:
    """Flower 1.42 Messages need a task identity in the process that builds them."""
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, node_id, 1


@ray.remote(num_cpus=1)
class RecordsActor:
    """Answers like an SL client: the reply's records and state per variant, after ``busy``."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)
        _set_identity(node_id=1)
        self.shaped = _shaped()

    def run(
        self, message: Message, context: Context, busy: float, variant: str
    ) -> tuple[Message, Context, float]:
        """Return the reply, the context and the seconds spent in this method."""
        started = time.perf_counter()
        if busy > 0:
            self.shaped.busy_compute(busy)
        if variant in ("state", "sl"):
            for key, record in self.shaped.state_records().items():
                context.state[key] = record
        content = self.shaped.reply_content(BATCH) if variant in ("message", "sl") else RecordDict()
        reply = Message(RecordDict(dict(content)), reply_to=message)
        return reply, context, time.perf_counter() - started


def _message(variant: str) -> Message:
    """Return a step message with the variant's content, as the engine would send it."""
    shaped = _shaped()
    content = shaped.step_content(BATCH) if variant in ("message", "sl") else RecordDict()
    message = Message(RecordDict(dict(content)), dst_node_id=1, message_type="train.sl_step")
    # The LinkState stamps every message's id; a reply cites it.
    message.metadata.__dict__["_message_id"] = "0" * 64
    return message


def measure(calls: int, busy_values: list[float]) -> pd.DataFrame:
    """Time ``calls`` actor calls per variant and ``busy`` value; one row per call."""
    _set_identity(node_id=0)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        actor = RecordsActor.remote()
        contexts = {
            v: Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
            for v in VARIANTS
        }
        for variant in VARIANTS:  # warm-up: imports, cached records, first pickles
            ray.get(actor.run.remote(_message(variant), contexts[variant], 0.0, variant))
        rows = []
        for busy in busy_values:
            for call in range(calls):
                for variant in VARIANTS:
                    message = _message(variant)
                    started = time.perf_counter()
                    _, contexts[variant], inside = ray.get(
                        actor.run.remote(message, contexts[variant], busy, variant)
                    )
                    elapsed = time.perf_counter() - started
                    rows.append(
                        dict(
                            variant=variant,
                            busy_s=busy,
                            call=call,
                            round_trip_ms=elapsed * 1e3,
                            overhead_ms=(elapsed - inside) * 1e3,
                        )
                    )
    finally:
        ray.shutdown()
    return pd.DataFrame(rows)


def summarize(calls: pd.DataFrame) -> pd.DataFrame:
    """Median and quartiles of the overhead per busy value and variant; the excess over empty."""
    grouped = calls.groupby(["busy_s", "variant"], sort=False)["overhead_ms"]
    summary = grouped.median().rename("median_ms").to_frame()
    summary["p25_ms"] = grouped.quantile(0.25)
    summary["p75_ms"] = grouped.quantile(0.75)
    summary = summary.reset_index()
    empty = summary[summary["variant"] == "empty"].set_index("busy_s")["median_ms"]
    summary["over_empty_ms"] = summary["median_ms"] - summary["busy_s"].map(empty)
    return summary


def plot(summary: pd.DataFrame) -> plt.Figure:
    """Bars of the median overhead per variant, one group per busy value."""
    table = summary.pivot(index="busy_s", columns="variant", values="median_ms")[list(VARIANTS)]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    table.rename(index=lambda b: f"busy {b * 1e3:g} ms").plot.bar(ax=ax, rot=0)
    ax.set_xlabel("")
    ax.set_ylabel("Ray call overhead per message (ms)")
    ax.set_title("SL records in a Ray actor call (median)")
    return fig


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the benchmark; print and return the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per variant and busy")
    parser.add_argument("--busy", type=float, nargs="+", default=[0.0, 0.0018])
    parser.add_argument("--quick", action="store_true", help="5 calls")
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    calls = measure(5 if args.quick else args.calls, args.busy)
    summary = summarize(calls)
    out = output_dir("bench_ray_records", args.results)
    calls.to_csv(out / "calls.csv", index=False)
    summary.to_csv(out / "summary.csv", index=False)
    save_figure(plot(summary), out / "ray_records.png")
    write_env(out, argv=sys.argv[1:] if argv is None else argv)
    print(summary.to_string(index=False))
    print(f"results in {out}")
    return summary


if __name__ == "__main__":
    main()
