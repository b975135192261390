"""`stream_lines`: each line reaches the callback while the command still runs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from flwr_split.launch.stream import stream_lines

SLOW_PRINTER = "import time\nfor i in range(3):\n    print('line', i)\n    time.sleep(0.5)\n"


def test_lines_arrive_as_they_are_printed_and_the_result_holds_them_all():
    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    done = stream_lines(
        [sys.executable, "-c", SLOW_PRINTER],
        lambda line: arrivals.append((time.monotonic() - started, line)),
    )
    ended = time.monotonic() - started
    assert [line for _, line in arrivals] == ["line 0\n", "line 1\n", "line 2\n"]
    # unbuffered: the first line came about a second before the program ended
    assert ended - arrivals[0][0] > 0.8
    assert done.returncode == 0 and done.stdout == "line 0\nline 1\nline 2\n"


def test_stderr_is_merged_and_the_exit_code_kept():
    code = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    done = stream_lines([sys.executable, "-c", code], lambda line: None)
    assert done.returncode == 3 and sorted(done.stdout.splitlines()) == ["err", "out"]


def test_a_timeout_kills_the_command():
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        stream_lines([sys.executable, "-c", "import time; time.sleep(60)"], print, timeout=1.0)
    assert time.monotonic() - started < 30
