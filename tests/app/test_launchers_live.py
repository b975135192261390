"""`python -m simulations.run` for real: progress while it runs, clean logs, verdicts, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flwr_split.launch.stream import stream_lines

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
JOB = "epochs=3 batch-size=64 eval-every=10 uplink='quant:bits=8' downlink='fp16'"


def launcher(tmp_path: Path, run_config: str, output_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "simulations.run",
        "--num-supernodes",
        "3",
        "--flwr-home",
        str(tmp_path / "home"),
        "--output-dir",
        str(output_dir),
        "--run-config",
        run_config,
    ]


def processes_with(text: str) -> list[int]:
    """Live processes whose environment mentions ``text`` (our FLWR_HOME)."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if text.encode() in Path(f"/proc/{name}/environ").read_bytes():
                    status = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[0]
                    if status not in ("Z", "X"):
                        found.append(int(name))
            except OSError:
                continue
    return found


def test_progress_streams_while_the_run_runs_and_the_files_say_what_ran(tmp_path):
    arrivals: list[tuple[float, str]] = []
    done = stream_lines(
        launcher(tmp_path, JOB, tmp_path / "out"),
        lambda line: arrivals.append((time.monotonic(), line)),
        cwd=ROOT,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout
    progress = [at for at, line in arrivals if line.startswith("step ") and " ETA " in line]
    final = next(at for at, line in arrivals if "final test accuracy" in line)
    assert len(progress) >= 2 and progress[0] < final - 1.0  # streamed, not held to the end
    assert "epoch 3/3" in done.stdout and "accuracy" in done.stdout
    for noise in ("changed from 10 to 2", "FutureWarning", "logstream", "flwr-split:"):
        assert noise not in done.stdout, noise
    name = "digits_up-quant-bits8_down-fp16"
    for suffix in (".csv", "_steps.csv", "_traffic.csv", ".png"):
        assert (tmp_path / "out" / f"{name}{suffix}").stat().st_size > 0
    assert done.stdout.rstrip().splitlines()[-1].startswith("done in ")


def test_a_serverapp_that_fails_makes_the_launcher_fail_in_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # the ServerApp cannot write its results here
    done = subprocess.run(
        launcher(tmp_path, "max-steps=1", blocker),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the ServerApp failed: ") and "a-file" in last, done.stderr
    assert "logs: " in last


def test_ctrl_c_stops_every_process_and_prints_no_traceback(tmp_path):
    """Also when the launcher starts with SIGINT ignored, as a shell without job control
    starts background commands: a CI run started with ``&`` hung here before
    `stop_signals_raise`."""
    home = tmp_path / "home"
    process = subprocess.Popen(
        launcher(tmp_path, "epochs=50", tmp_path / "out"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if line.startswith("step "):  # training has started
            break
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    rest, _ = process.communicate(timeout=120)
    text = "".join(output) + rest
    assert process.returncode == 130, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert text.rstrip().splitlines()[-1].startswith("interrupted:")
    assert processes_with(str(home)) == []
