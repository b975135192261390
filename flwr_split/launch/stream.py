"""Run a command and hand each line of its output to a callback as it is printed.

`stream_lines` is `subprocess.run` with ``capture_output`` for commands whose
output a person should see while they run (``flwr run --stream``): it returns
the same `subprocess.CompletedProcess` (stdout and stderr merged into
``stdout``), and calls ``on_line`` with every line as soon as it arrives.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def stream_lines(
    command: Sequence[str],
    on_line: Callable[[str], None],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; call ``on_line`` with each output line (stdout and stderr) as it comes.

    Parameters
    ----------
    command : Sequence[str]
        The program and its arguments.
    on_line : Callable[[str], None]
        Takes each line, with its newline.
    env : Mapping[str, str] or None
        The command's environment (default: ours), with ``PYTHONUNBUFFERED=1``
        added so that a Python program's prints are not held back in a pipe buffer.
    cwd : Path or None
        Its working directory.
    timeout : float or None
        Seconds before the command is killed.

    Returns
    -------
    subprocess.CompletedProcess[str]
        The exit code and everything the command printed, as ``stdout``.

    Raises
    ------
    subprocess.TimeoutExpired
        If ``timeout`` passed; the command has been killed.
    """
    process = subprocess.Popen(
        list(command),
        env={**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        bufsize=1,
    )
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        process.kill()

    timer = threading.Timer(timeout, expire) if timeout is not None else None
    lines: list[str] = []
    try:
        if timer is not None:
            timer.start()
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            on_line(line)
        process.wait()
    finally:
        if timer is not None:
            timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    if expired.is_set():
        raise subprocess.TimeoutExpired(list(command), timeout or 0.0, "".join(lines))
    return subprocess.CompletedProcess(list(command), process.returncode, "".join(lines), "")
