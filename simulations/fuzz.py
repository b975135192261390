"""Fuzzer: malformed replies and server messages through the in-process grid, for every codec.

Usage: ``python -m simulations.fuzz [--quick] [--cases N] [--side server|client|both]
[--seed S] [--results results]``

Server side, each case arms a `CorruptingApp` (the default ClientApp, whose next
reply of one kind from partition 0 gets one mutation of
`simulations.fuzz_mutations.REPLY_MUTATIONS`) and drives the strategy hook that
asks for that reply, on the `InProcessGrid`: ``hello`` (`Messenger.hello`),
``train`` (a ``train_step`` under ``every_epoch``), ``bottom_grad`` (a
``train_step`` under ``every_step``: the backward's ``sl.bottom_grad``), ``sync``
(``end_epoch``: the FedAvg upload) and ``eval`` (an evaluation). Each case's
strategy is one that finished an honest `start` first; it is rebuilt every
`CASES_PER_STRATEGY` cases. Client side, each case sends one message the
server sent in an honest run (hello, forward, backward in either mode, sync,
eval; with the bottom weights attached so it stands alone), damaged by one of
`SERVER_MUTATIONS`, straight into the ClientApp with a fresh Context.

Per case it records: ``crash`` (an exception escaped the hook or the ClientApp),
``hang`` (over `HANG_SECONDS`), whether the damage was applied and must be
refused (``strict``), ``rejected`` (with a reason), ``accepted_bad`` (strict,
applied, not refused), ``collateral`` (another partition rejected; the first such
reason in ``collateral_reason``), and the process's peak RSS. Writes ``runs.csv``
(one row per case) and ``env.json``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import resource
import time
from itertools import product

import numpy as np
import pandas as pd
from flwr.app import Context, Message, RecordDict

from flwr_split.client.app import app as default_app
from flwr_split.client.session_cache import SESSION_CACHE
from flwr_split.client.state import state_stamp
from flwr_split.codecs import get_codec, registered_codecs
from flwr_split.tasks import TaskConfig
from flwr_split.testing.inprocess import InProcessGrid
from flwr_split.wire import KEY_ACTS, KEY_BOTTOM, KEY_BOTTOM_GRAD, KEY_ORDER, MSG_EVAL, MSG_HELLO
from simulations.common import output_dir, torch_threads, write_env
from simulations.fuzz_mutations import (
    REPLY_MUTATIONS,
    SERVER_MUTATIONS,
    Mutation,
    copy_content,
)
from strategies.parallel import ParallelSplitLearning

BAD = 0
"""The partition whose replies (server side) or messages (client side) are damaged."""
NODES = 3
HANG_SECONDS = 5.0
CASES_PER_STRATEGY = 200
"""Cases before a server-side strategy is rebuilt (its logs grow with every case)."""
TARGETS = ("hello", "train", "bottom_grad", "sync", "eval")
"""Server side: the reply a case damages."""
CLIENT_KINDS = ("hello", "forward", "backward_return", "backward_apply", "sync", "eval")
"""Client side: the kind of server message a case damages."""
TARGET_KEYS = {"train": KEY_ACTS, "bottom_grad": KEY_BOTTOM_GRAD, "sync": KEY_BOTTOM}


def codec_specs() -> list[str]:
    """Every registered codec with its default options."""
    return registered_codecs()


def downlink_of(codec: str) -> str:
    """Return the gradients' codec: ``codec``, or identity if it takes no negative values."""
    return codec if get_codec(codec).accepts_negative else "identity"


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class CorruptingApp:
    """The default ClientApp; when armed, partition `BAD`'s next reply of a kind is damaged."""

    def __init__(self) -> None:
        self.armed: tuple[str, Mutation, np.random.Generator] | None = None
        self.strict: bool | None = None

    def arm(self, target: str, mutation: Mutation, rng: np.random.Generator) -> None:
        """Damage the next matching reply with ``mutation``."""
        self.armed, self.strict = (target, mutation, rng), None

    def __call__(self, message: Message, context: Context) -> Message:
        """Reply as the default ClientApp does, damaged if armed and it matches."""
        reply = default_app(message, context)
        if self.armed is None or context.node_config["partition-id"] != BAD:
            return reply
        target, mutation, rng = self.armed
        if not reply.has_error() and matches(target, message, reply.content):
            self.armed = None
            self.strict = mutation(reply.content, rng)
        return reply


def matches(target: str, message: Message, content: RecordDict) -> bool:
    """Whether ``content``, the reply to ``message``, is the kind of reply ``target`` names."""
    kind = message.metadata.message_type
    if target in ("hello", "eval"):
        return kind == (MSG_HELLO if target == "hello" else MSG_EVAL)
    return kind != MSG_EVAL and TARGET_KEYS[target] in content


class ServerHarness:
    """One strategy on the in-process grid, driven case by case."""

    def __init__(self, codec: str, sync: str) -> None:
        self.app = CorruptingApp()
        self.grid = InProcessGrid(self.app, NODES)
        self.strategy = ParallelSplitLearning(
            TaskConfig(),
            uplink=codec,
            downlink=downlink_of(codec),
            batch_size=4,
            sync=sync,
            eval_every=10**6,
            min_available_nodes=NODES,
            step_timeout=HANG_SECONDS,
            node_timeout=HANG_SECONDS,
        )
        self.strategy.start(self.grid, num_epochs=1, max_steps=1)
        self.step = 1

    def close(self) -> None:
        """Drop the cached sessions of this grid's nodes (they are gone with the harness)."""
        for context in self.grid.contexts.values():
            SESSION_CACHE.evict((context.run_id, context.node_id, state_stamp(context)[0]))

    def drive(self, target: str) -> None:
        """Run the hook that asks for a ``target`` reply (exceptions escape)."""
        strategy = self.strategy
        if target == "hello":
            strategy.messenger.hello(sorted(self.grid.get_node_ids()))
        elif target == "eval":
            strategy._evaluate(self.step, 0)
        else:
            counts = np.full(len(strategy.clients), 4)
            limit = min(c.train_count for c in strategy.clients) - 4
            strategy.train_step(self.step, 0, counts, np.full_like(counts, 4 * self.step % limit))
            if target == "sync":
                strategy.end_epoch(self.step, 0)
        self.step += 1

    def case(self, target: str, mutation: Mutation, rng: np.random.Generator) -> dict:
        """Run one case; return its outcome columns."""
        strategy = self.strategy
        strategy.messenger.rejected.clear()
        strategy.traffic.rows.clear()
        self.app.arm(target, mutation, rng)
        started = time.perf_counter()
        crash = ""
        try:
            self.drive(target)
        except Exception as exc:  # noqa: BLE001 - an escaping exception is what is counted
            crash = f"{type(exc).__name__}: {exc}"[:200]
        ours = {BAD, -1} if target == "hello" else {BAD}  # hello probes have no partition yet
        mine = [reason for _, pid, reason in strategy.rejected if pid in ours]
        others = [reason for _, pid, reason in strategy.rejected if pid not in ours]
        return outcome(
            crash,
            time.perf_counter() - started,
            applied=self.app.armed is None,
            strict=bool(self.app.strict),
            rejected=bool(mine),
            reasons_ok=all(isinstance(r, str) and r for _, _, r in strategy.rejected),
            collateral=len(others),
            reason=(mine or others or [""])[0][:160],
            collateral_reason=(others or [""])[0][:160],
        )


def progress(side: str, index: int, cases: int) -> None:
    """Print a line every 1,000 cases (long runs take tens of minutes)."""
    if (index + 1) % 1000 == 0:
        print(f"{side}: {index + 1}/{cases} cases", flush=True)


def outcome(crash: str, wall: float, **flags: bool | int | str) -> dict:
    """Return the outcome columns of a case."""
    accepted_bad = bool(
        not crash and flags["applied"] and flags["strict"] and not flags["rejected"]
    )
    return {
        "crash": crash,
        "hang": wall > HANG_SECONDS,
        "seconds": round(wall, 4),
        **flags,
        "accepted_bad": accepted_bad,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def plan(cases: int, kinds: list[str], mutations: list[str], seed: int) -> list[tuple]:
    """Return ``cases`` (codec, kind, mutation) triples: codecs in turn, an equal share each.

    Each codec's share walks a seeded shuffle of all (kind, mutation) pairs,
    so any share of at least that many cases covers every pair.
    """
    codecs = codec_specs()
    pairs = list(product(kinds, mutations))
    triples = []
    for number, codec in enumerate(codecs):
        share = cases // len(codecs) + (number < cases % len(codecs))
        order = np.random.default_rng([seed, number]).permutation(len(pairs))
        triples += [(codec, *pairs[order[j % len(pairs)]]) for j in range(share)]
    return triples


def server_cases(cases: int, seed: int) -> list[dict]:
    """Run ``cases`` server-side cases over every codec, reply kind and mutation."""
    harnesses: dict[tuple[str, str], ServerHarness] = {}
    used: dict[tuple[str, str], int] = {}
    rows = []
    for index, (codec, target, name) in enumerate(
        plan(cases, list(TARGETS), sorted(REPLY_MUTATIONS), seed)
    ):
        key = (codec, "every_step" if target == "bottom_grad" else "every_epoch")
        if key not in harnesses or used[key] >= CASES_PER_STRATEGY:
            stale = [k for k in harnesses if k == key or k[0] != codec]  # one codec at a time
            for old in stale:
                harnesses.pop(old).close()
            harnesses[key], used[key] = ServerHarness(*key), 0
        used[key] += 1
        row = harnesses[key].case(
            target, REPLY_MUTATIONS[name], np.random.default_rng([seed, index])
        )
        if row["collateral"]:  # another client paid: start the next case from a clean state
            used[key] = CASES_PER_STRATEGY
        labels = {"codec": codec, "target": target, "mutation": name}
        rows.append({"side": "server", "case": index, **labels, **row})
        progress("server", index, cases)
    return rows


class Recorder:
    """The default ClientApp, keeping a copy of every message partition `BAD` is sent."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message, context: Context) -> Message:
        """Keep a copy of ``message`` if it is for partition `BAD`; reply as the default app."""
        if context.node_config["partition-id"] == BAD:
            self.messages.append(copy_message(message, message.content))
        return default_app(message, context)


def honest_messages(codec: str) -> dict[str, Message]:
    """Messages of each kind the server sends in honest runs with ``codec`` as downlink.

    Kinds: ``hello``, ``forward``, ``backward_return`` (``every_step``),
    ``backward_apply`` and ``sync`` (``every_epoch``), ``eval``. Each carries
    the bottom weights, so it stands alone in a fresh Context.
    """
    kinds: dict[str, Message] = {}
    for sync in ("every_step", "every_epoch"):
        recorder = Recorder()
        strategy = ParallelSplitLearning(
            TaskConfig(),
            uplink=codec,
            downlink=downlink_of(codec),
            batch_size=4,
            sync=sync,
            min_available_nodes=NODES,
        )
        strategy.start(InProcessGrid(recorder, NODES), num_epochs=1, max_steps=2)
        for message in recorder.messages:
            kinds.setdefault(message_kind(message), message)
    bottom = next(m.content[KEY_BOTTOM] for m in kinds.values() if KEY_BOTTOM in m.content)
    for kind, message in kinds.items():
        if kind != "hello" and KEY_BOTTOM not in message.content:
            message.content[KEY_BOTTOM] = bottom
    return kinds


def message_kind(message: Message) -> str:
    """Name the kind of a message the server sent."""
    kind = message.metadata.message_type
    if kind in (MSG_HELLO, MSG_EVAL):
        return "hello" if kind == MSG_HELLO else "eval"
    order = message.content[KEY_ORDER]
    if order["return_weights"]:
        return "sync"
    if order["bwd_count"]:
        return f"backward_{order['bwd_mode']}"
    return "forward"


def copy_message(message: Message, content: RecordDict) -> Message:
    """Return a message like ``message`` (type, destination, group) with a copy of ``content``."""
    copied = Message(
        copy_content(content),
        dst_node_id=message.metadata.dst_node_id,
        message_type=message.metadata.message_type,
        group_id=message.metadata.group_id,
    )
    copied.metadata.__dict__["_message_id"] = message.metadata.message_id or "fuzz"
    return copied


def client_case(message: Message, mutation: Mutation, rng: np.random.Generator) -> dict:
    """Send a damaged copy of ``message`` into the ClientApp; return the outcome columns."""
    content = copy_content(message.content)
    strict = mutation(content, rng)
    damaged = copy_message(message, content)
    context = Context(
        run_id=1,
        node_id=message.metadata.dst_node_id,
        node_config={"partition-id": BAD, "num-partitions": NODES},
        state=RecordDict(),
        run_config={},
    )
    started = time.perf_counter()
    crash, rejected, reason = "", False, ""
    try:
        reply = default_app(damaged, context)
        if not isinstance(reply, Message):
            crash = f"reply is {type(reply).__name__}"
        elif reply.has_error():
            rejected, reason = True, reply.error.reason
    except Exception as exc:  # noqa: BLE001 - an escaping exception is what is counted
        crash = f"{type(exc).__name__}: {exc}"[:200]
    wall = time.perf_counter() - started
    # Each case is a fresh node: drop its cached session, as a node gone would.
    SESSION_CACHE.evict((context.run_id, context.node_id, state_stamp(context)[0]))
    return outcome(
        crash,
        wall,
        applied=strict is not None,
        strict=bool(strict),
        rejected=rejected,
        reasons_ok=not rejected or bool(reason),
        collateral=0,
        reason=reason[:160],
        collateral_reason="",
    )


def client_cases(cases: int, seed: int) -> list[dict]:
    """Run ``cases`` client-side cases over every codec, message kind and mutation."""
    rows = []
    codec, kinds = "", {}
    for index, (spec, kind, name) in enumerate(
        plan(cases, list(CLIENT_KINDS), sorted(SERVER_MUTATIONS), seed)
    ):
        if spec != codec:
            codec, kinds = spec, honest_messages(spec)
        rng = np.random.default_rng([seed, index])
        row = client_case(kinds[kind], SERVER_MUTATIONS[name], rng)
        labels = {"codec": codec, "target": kind, "mutation": name}
        rows.append({"side": "client", "case": index, **labels, **row})
        progress("client", index, cases)
    return rows


def summarize(runs: pd.DataFrame, baseline_mb: float) -> pd.DataFrame:
    """Totals per side: cases, crashes, hangs, accepts of bad data, reasonless rejections."""
    return runs.groupby("side").agg(
        cases=("case", "size"),
        applied=("applied", "sum"),
        crashes=("crash", lambda c: int((c != "").sum())),
        hangs=("hang", "sum"),
        rejected=("rejected", "sum"),
        accepted_bad=("accepted_bad", "sum"),
        reasonless=("reasons_ok", lambda r: int((~r).sum())),
        collateral=("collateral", "sum"),
        max_seconds=("seconds", "max"),
        peak_growth_mb=("peak_rss_mb", lambda p: round(p.max() - baseline_mb, 1)),
    )


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the fuzzer; write ``runs.csv`` and ``env.json``; return the per-side summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 cases per codec and side")
    parser.add_argument("--cases", type=int, default=2000, help="cases per side")
    parser.add_argument("--side", choices=("server", "client", "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest here)")
    parser.add_argument("--results", default="results", help="base folder of the output")
    args = parser.parse_args(argv)
    cases = 2 * len(codec_specs()) if args.quick else args.cases
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    flwr_logger.setLevel(logging.CRITICAL)  # thousands of rejections
    started = time.perf_counter()
    rows = []
    try:
        with torch_threads(args.threads):
            ServerHarness(codec_specs()[0], "every_epoch")  # warm-up: imports, data, caches
            # A mutated seed makes a client split the digits anew, which imports
            # scikit-learn once (~120 MB); the cached default split does not.
            importlib.import_module("sklearn.model_selection")
            baseline_mb = peak_rss_mb()
            if args.side in ("server", "both"):
                rows += server_cases(cases, args.seed)
            if args.side in ("client", "both"):
                rows += client_cases(cases, args.seed)
    finally:
        flwr_logger.setLevel(level)
    runs = pd.DataFrame(rows)
    out = output_dir("fuzz", args.results)
    runs.to_csv(out / "runs.csv", index=False)
    summary = summarize(runs, baseline_mb)
    write_env(
        out,
        cases=cases,
        side=args.side,
        seed=args.seed,
        threads=args.threads,
        baseline_rss_mb=baseline_mb,
        seconds=round(time.perf_counter() - started, 1),
        summary=summary.reset_index().to_dict(orient="records"),
    )
    print(summary.to_string())
    print(f"wrote {out}")
    return summary


if __name__ == "__main__":
    main()
