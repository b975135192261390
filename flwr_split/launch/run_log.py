"""What our ServerApp tells a launcher through the log of ``flwr run --stream``, and its reader.

The ServerApp prints three kinds of marked lines: `Progress` snapshots
(`flwr_split.server.progress`), one `result_line` when it has written its
results, and one `failure_line` when it raises. ``flwr run`` may exit 0 after a
ServerApp failed, so a launcher decides from these lines, not from the exit
code alone. `RunLog` reads the streamed lines: progress goes to a progress
bar, the result and failure lines are kept, known third-party noise
(`NOISE`) is dropped, and every other line is shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from flwr_split.server.progress import Progress, ProgressSink

RESULT_PREFIX = "flwr-split:result "
"""Start of the line a ServerApp prints once its results are written."""
FAILED_PREFIX = "flwr-split:failed "
"""Start of the line a ServerApp prints when it raises."""

ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""Terminal colour codes (Flower colours its log levels)."""

NOISE: tuple[re.Pattern[str], ...] = (
    # Flower >= 1.32 warns on every simulation that the *default* number of simulated
    # SuperNodes changed from 10 to 2, also when --federation-config sets it (ours always do).
    re.compile(r"default simulated SuperNodes changed from 10 to 2"),
    # ... and then explains how to resize the federation with `flwr federation
    # simulation-config`, which our launchers' --num-supernodes does already.
    re.compile(r"To change federation size, use the following command"),
    re.compile(r"flwr federation simulation-config \S+ <superlink> --num-supernodes <N>"),
    # Ray >= 2.4x: a FutureWarning in every worker that it will stop overriding
    # CUDA_VISIBLE_DEVICES for actors without GPUs (nothing to act on for CPU runs) ...
    re.compile(r"FutureWarning: Tip: In future versions of Ray, Ray will no longer override"),
    # ... and the source line Python prints under any warning raised in library code.
    re.compile(r"^\s*warnings\.warn\($"),
    # `flwr run --stream` frames the run's log with its own "Starting logstream for run_id"
    # and "Exiting logstream" (printed on Ctrl-C): the CLI's bookkeeping, not the run's.
    re.compile(r"(Starting|Exiting) logstream"),
    # Flower's Ray backend warns for each ClientApp actor it stops at the end of a simulation,
    # as it always does: nothing went wrong.
    re.compile(r"ClientAppActor pid=\d+\)\s*WARNING\s*:\s*Manually terminating ClientAppActor"),
    # Flower's ServerApp runtime logs an empty INFO record when the run ends.
    re.compile(r"^\s*INFO\s*:\s*$"),
)
"""Lines of third-party output that a launcher drops, each for the reason in its comment."""


def result_line(values: Mapping[str, Any]) -> str:
    """Return the line that says a run finished: `RESULT_PREFIX` and ``values`` as JSON."""
    return RESULT_PREFIX + json.dumps(dict(values), separators=(",", ":"))


def failure_line(error: BaseException) -> str:
    """Return the line that says a run failed: `FAILED_PREFIX`, the error's type and first line."""
    text = str(error).strip().splitlines()
    return FAILED_PREFIX + type(error).__name__ + (f": {text[0]}" if text else "")


def is_noise(line: str) -> bool:
    """Return whether ``line`` is known third-party noise (`NOISE`)."""
    plain = ANSI.sub("", line).rstrip("\n")
    return any(pattern.search(plain) for pattern in NOISE)


class RunLog:
    """Sort the lines of ``flwr run --stream`` as they come.

    Parameters
    ----------
    show : Callable[[str], None]
        Takes every line that is neither noise nor marked.
    progress : ProgressSink or None (default: None)
        Takes each `Progress` line's snapshot; ``None`` drops them.

    Attributes
    ----------
    result : dict or None
        What the ServerApp's result line said, once it came.
    failure : str or None
        The ServerApp's failure line without its prefix, once it came.
    """

    def __init__(self, show: Callable[[str], None], progress: ProgressSink | None = None) -> None:
        self.show = show
        self.progress = progress
        self.result: dict[str, Any] | None = None
        self.failure: str | None = None

    def __call__(self, line: str) -> None:
        """Take one line of output."""
        plain = ANSI.sub("", line)
        snapshot = Progress.from_line(plain)
        if snapshot is not None:
            if self.progress is not None:
                self.progress(snapshot)
        elif RESULT_PREFIX in plain:
            try:
                self.result = json.loads(plain[plain.index(RESULT_PREFIX) + len(RESULT_PREFIX) :])
            except ValueError:
                self.result = {}
        elif FAILED_PREFIX in plain:
            self.failure = plain[plain.index(FAILED_PREFIX) + len(FAILED_PREFIX) :].strip()
        elif not is_noise(plain):
            self.show(line)

    def verdict(self, returncode: int) -> str | None:
        """Return why the run failed, in one line, or None if it succeeded.

        A run succeeded if ``flwr run`` exited 0 and the ServerApp printed its
        result line (and no failure line).
        """
        if self.failure is not None:
            return f"the ServerApp failed: {self.failure}"
        if returncode != 0:
            return f"flwr run exited with code {returncode}"
        if self.result is None:
            return "the ServerApp ended without writing results"
        return None
