"""What `simulations.run` and `simulations.deploy` share: options, checks, the watched run, exits.

A launcher checks the whole run config before it starts anything
(`checked_run_config`: a mistake ends within seconds, in one line, with
`EXIT_USAGE`), then runs ``flwr run --stream`` through a `RunWatch` that shows
the run as it goes: a progress bar fed by the ServerApp's progress lines, the
other log lines without known third-party noise, and a one-line verdict. The
exit code follows the verdict, not ``flwr run``'s own code, which may be 0
after the ServerApp failed.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from flwr_split.launch.processes import FlowerProcesses
from flwr_split.launch.run_log import ANSI, RunLog
from flwr_split.options.check import RunConfigError, check_run_config
from flwr_split.server.progress import PROGRESS_ENV, ProgressBar
from strategies.registry import build_strategy

ROOT = Path(__file__).resolve().parent.parent
"""The Flower App that the launchers run (the repository root)."""

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143
"""Exit codes: finished; the run failed; a bad option or run config (nothing started); Ctrl-C;
SIGTERM."""

PAIR = re.compile(r"""[\w.-]+=(?:'[^']*'|"[^"]*"|\S+)""")


def parse_overrides(text: str) -> dict[str, object]:
    """Parse ``key=value`` pairs (TOML values, space separated) into a dict.

    Raises
    ------
    RunConfigError
        If part of ``text`` is not such a pair, or a value is not TOML.
    """
    pairs = PAIR.findall(text)
    rest = PAIR.sub(" ", text).strip()
    hint = "write key=value pairs, space separated, strings quoted: \"uplink='fp16' epochs=3\""
    if rest:
        raise RunConfigError(f"--run-config: cannot read {rest!r}; {hint}")
    try:
        return tomllib.loads("\n".join(pairs))
    except tomllib.TOMLDecodeError as exc:
        raise RunConfigError(f"--run-config {text!r}: {exc}; {hint}") from None


def launcher_parser(
    module: str,
    doc: str,
    epilog: str,
    *,
    nodes: tuple[int, str],
    flwr_home: str,
    output_dir: str,
) -> argparse.ArgumentParser:
    """Return a launcher's parser with the options every launcher has, an example each.

    ``nodes`` is the default of ``--num-supernodes`` and what a SuperNode is
    there; ``flwr_home`` and ``output_dir`` are the defaults of ``--flwr-home``
    and ``--output-dir``.
    """
    called = Path(sys.argv[0]).name
    parser = argparse.ArgumentParser(
        prog=called if called.startswith("flwr-split ") else f"python -m {module}",
        description=doc.splitlines()[0],
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--num-supernodes",
        type=int,
        default=nodes[0],
        help=f"{nodes[1]}, e.g. --num-supernodes 2 (default: {nodes[0]})",
    )
    parser.add_argument(
        "--run-config",
        default="",
        metavar="PAIRS",
        help="run-config overrides, keys of [tool.flwr.app.config] (python -m flwr_split.options "
        "lists them), e.g. --run-config \"uplink='quant:bits=8' epochs=5\"",
    )
    parser.add_argument(
        "--output-dir",
        default=output_dir,
        help=f"where the CSV and PNG files go, e.g. --output-dir results/q8 (default: "
        f"{output_dir})",
    )
    parser.add_argument(
        "--flwr-home",
        default=flwr_home,
        help=f"FLWR_HOME of the Flower processes: config, logs, the streamed run log, e.g. "
        f"--flwr-home /tmp/home (default: {flwr_home})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="seconds before `flwr run` is stopped, e.g. --timeout 600 (default: 3600)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (log lines only), e.g. --quiet"
    )
    return parser


def checked_run_config(
    args: argparse.Namespace,
    launcher_config: Mapping[str, object],
    defaults: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """Return the run config: ``launcher_config`` with ``args.run_config`` on top.

    ``defaults`` apply unless ``--run-config`` sets one of their keys or
    ``epochs`` (how long a run is, said once). Everything the ServerApp would
    build is built here, so that a bad value ends the launcher before any
    Flower process starts.

    Raises
    ------
    RunConfigError
        With a one-line message naming the bad value and the fix.
    """
    overrides = parse_overrides(args.run_config)
    run_config = {**launcher_config, **overrides}
    if defaults and not {*defaults, "epochs"} & set(overrides):
        run_config.update(defaults)
    settings = check_run_config(run_config, args.num_supernodes)
    try:
        build_strategy(settings)
    except (ValueError, TypeError, LookupError) as exc:
        raise RunConfigError(f"run config: {str(exc).strip().splitlines()[0]}") from exc
    return run_config


def usage_error(error: RunConfigError) -> int:
    """Print ``error`` as one line on stderr and return `EXIT_USAGE`."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_USAGE


class RunWatch:
    """Show a ``flwr run --stream`` as it goes and decide how it ended.

    Use as the ``on_line`` callback of `FlowerProcesses.flwr_run` after
    `attach`: every line is appended to ``<flwr_home>/flwr-run.log``, progress
    lines drive a ticking `ProgressBar` on stderr (none with ``quiet``), noise
    is dropped, the rest is printed (without colour codes off a terminal). `finish` or
    `fail` closes the bar.

    Parameters
    ----------
    quiet : bool (default: False)
        No progress bar.
    out : IO[str] or None (default: None, ``sys.stdout``)
        Where log lines go (the bar draws on stderr).
    """

    def __init__(self, quiet: bool = False, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout
        self.bar = None if quiet else ProgressBar(tick=True)
        self.log = RunLog(self._print, self.bar)
        self.log_path: Path | None = None
        self.started = time.perf_counter()

    def attach(self, processes: FlowerProcesses) -> None:
        """Have ``processes``' ServerApp print progress lines; log the run in their FLWR_HOME."""
        processes.env[PROGRESS_ENV] = "1"
        self.log_path = processes.flwr_home / "flwr-run.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("")

    def __call__(self, line: str) -> None:
        """Take one line of ``flwr run``'s output."""
        if self.log_path is not None:
            with open(self.log_path, "a") as log:
                log.write(line)
        self.log(line)

    def _print(self, line: str) -> None:
        if not getattr(self.out, "isatty", lambda: False)():
            line = ANSI.sub("", line)  # Flower colours its log levels: no escape codes in a file
        if self.bar is not None:
            self.bar.write(line, self.out)
        else:
            self.out.write(line)
            self.out.flush()

    def fail(self, reason: str, logs: Path) -> int:
        """Close the bar, print ``error: <reason>; logs: ...`` and return `EXIT_FAILED`."""
        self.close_bar()
        print(f"error: {reason}; logs: {self.log_path or logs}", file=sys.stderr)
        return EXIT_FAILED

    def close_bar(self) -> None:
        """Close the progress bar, if any."""
        if self.bar is not None:
            self.bar.close()

    def finish(self, done: subprocess.CompletedProcess[str] | None, logs: Path) -> int:
        """Close the bar, print the one-line verdict and return the exit code.

        ``done`` is None if ``flwr run`` timed out.
        """
        if done is None:
            return self.fail("flwr run did not finish within --timeout", logs)
        reason = self.log.verdict(done.returncode)
        if reason is not None:
            return self.fail(reason, logs)
        self.close_bar()
        wall = time.perf_counter() - self.started
        where = f"logs: {self.log_path or logs}"
        result: dict[str, Any] = self.log.result or {}
        history = result.get("files", {}).get("history")
        print(
            f"done in {wall:.0f} s: {result.get('steps')} steps, "
            f"{result.get('bytes', 0) / 1e6:.1f} MB of training traffic; "
            f"results: {history} (and _steps.csv, _traffic.csv, .png); {where}",
            file=self.out,
            flush=True,
        )
        return EXIT_OK


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (``kill``, ``timeout``, a cancelled CI job): stop like Ctrl-C."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """Make SIGINT and SIGTERM raise in this block, then restore their old handling.

    SIGINT raises ``KeyboardInterrupt`` and SIGTERM `Terminated` (a
    ``KeyboardInterrupt``), so both take the path that stops every Flower
    process: the SuperLink and Ray run in sessions of their own, which only
    this process stops. Python only raises on SIGINT if the process did not
    start with SIGINT ignored, and a shell without job control starts every
    background command (``cmd &``, CI scripts, nohup-style wrappers) so: a
    launcher started that way would keep training through a process group's
    SIGINT, so the launcher takes SIGINT itself. Outside the main thread
    (where Python cannot take signals) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def watched_run(
    processes: FlowerProcesses,
    quiet: bool,
    run: Callable[[RunWatch], subprocess.CompletedProcess[str]],
) -> int:
    """Start ``processes``, call ``run(watch)`` inside, stop them all; return the exit code.

    ``run`` runs ``flwr run`` with the watch as its ``on_line``. A timeout and a
    start that fails are `EXIT_FAILED`, Ctrl-C `EXIT_INTERRUPTED`, each with
    one line, SIGTERM `EXIT_TERMINATED`; every process is stopped in every case.
    SIGINT counts as Ctrl-C even if this process started with it ignored
    (`stop_signals_raise`).
    """
    watch = RunWatch(quiet=quiet)
    watch.attach(processes)
    done = None
    try:
        with stop_signals_raise(), processes:
            done = run(watch)
    except subprocess.TimeoutExpired:
        pass
    except KeyboardInterrupt as stop:
        watch.close_bar()
        terminated = isinstance(stop, Terminated)
        print(
            f"{'terminated' if terminated else 'interrupted'}: the run and its processes were "
            f"stopped; logs: {processes.flwr_home}",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except (OSError, RuntimeError, TimeoutError) as exc:
        return watch.fail(f"Flower did not start: {exc}", processes.flwr_home)
    return watch.finish(done, processes.flwr_home)
