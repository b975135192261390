"""Shared test builders: a small in-process SL run, pinned-output digests, corrupted bytes."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

from flwr_split.client.app import app as default_client_app
from flwr_split.codecs import registry as codec_registry
from flwr_split.sampling import registry as sampler_registry
from flwr_split.server.result import SplitResult
from flwr_split.tasks import TaskConfig
from flwr_split.tasks.registry import TASKS
from flwr_split.testing.inprocess import InProcessGrid
from strategies.parallel import ParallelSplitLearning

START_ARGUMENTS = (
    "initial_arrays",
    "evaluate_fn",
    "callbacks",
    "progress",
    "checkpoint_every",
    "checkpoint_path",
    "resume_from",
)


def run_inprocess(
    num_nodes: int = 4,
    *,
    client_app: ClientApp | None = None,
    task: TaskConfig | None = None,
    epochs: int = 1,
    max_steps: int | None = 4,
    **kwargs: object,
) -> tuple[ParallelSplitLearning, SplitResult, InProcessGrid]:
    """Run parallel SL on digits in process; return strategy, result and grid.

    ``kwargs`` go to `ParallelSplitLearning`, but for ``start``'s own
    (``initial_arrays``, ``evaluate_fn``, ``callbacks``, ``progress``).
    """
    start_kwargs = {k: kwargs.pop(k) for k in START_ARGUMENTS if k in kwargs}
    strategy_kwargs = kwargs
    grid = InProcessGrid(client_app or default_client_app, num_nodes)
    strategy_kwargs.setdefault("batch_size", 8)
    strategy_kwargs.setdefault("eval_every", 1000)
    strategy_kwargs.setdefault("min_available_nodes", num_nodes)
    strategy = ParallelSplitLearning(task or TaskConfig(), **strategy_kwargs)
    result = strategy.start(grid, num_epochs=epochs, max_steps=max_steps, **start_kwargs)
    return strategy, result, grid


def tampering_app(
    partition: int, message_type: str, tamper: Callable[[RecordDict], None]
) -> Callable[[Message, Context], Message]:
    """The default ClientApp, with ``tamper(content)`` applied to one partition's good replies."""

    def app(message: Message, context: Context) -> Message:
        reply = default_client_app(message, context)
        if (
            context.node_config["partition-id"] == partition
            and message.metadata.message_type == message_type
            and not reply.has_error()
        ):
            tamper(reply.content)
        return reply

    return app


def digest(*arrays: np.ndarray) -> str:
    """First 16 hex digits of the SHA-256 of the arrays' bytes, in order (pinned references)."""
    return hashlib.sha256(b"".join(array.tobytes() for array in arrays)).hexdigest()[:16]


def flip_bytes(array: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return a copy of ``array`` with 1-4 of its bytes XORed with random non-zero values."""
    corrupted = array.copy()
    raw = corrupted.reshape(-1).view(np.uint8)
    positions = rng.integers(0, raw.size, rng.integers(1, 5))
    raw[positions] ^= rng.integers(1, 256, positions.size).astype(np.uint8)
    return corrupted


@contextmanager
def on_path(*folders: Path) -> Iterator[None]:
    """Put ``folders`` first on ``sys.path`` for the block, as an installed package would be.

    Afterwards the modules imported from them are dropped, and the codec,
    sampler and task registries hold only what they held before, so no other
    test sees what the block imported or registered.
    """
    registries = (codec_registry._CODECS, sampler_registry._SAMPLERS, TASKS)
    saved = [dict(registry._entries) for registry in registries]
    before = set(sys.modules)
    sys.path[:0] = [str(folder) for folder in folders]
    try:
        yield
    finally:
        for folder in folders:
            sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if any(origin.startswith(str(folder)) for folder in folders):
                del sys.modules[name]
        for registry, entries in zip(registries, saved, strict=True):
            registry._entries = entries
