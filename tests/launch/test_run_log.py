"""Reading `flwr run --stream`: progress, result and failure lines, noise, and the verdict."""

from __future__ import annotations

from flwr_split.launch.run_log import (
    FAILED_PREFIX,
    RunLog,
    failure_line,
    is_noise,
    result_line,
)
from flwr_split.server.progress import Progress

# Lines as flwr 1.42 and Ray 2.5x print them (colour codes included).
NOISE_LINES = [
    "\x1b[93mWARNING \x1b[0m:   Since flwr 1.32, default simulated SuperNodes changed from 10 "
    "to 2.\n",
    "\x1b[92mINFO \x1b[0m:      To change federation size, use the following command:\n",
    "\x1b[92mINFO \x1b[0m:      \tflwr federation simulation-config @none/default <superlink> "
    "--num-supernodes <N>\n",
    "/x/ray/_private/worker.py:2051: FutureWarning: Tip: In future versions of Ray, Ray will no "
    "longer override accelerator visible devices env var if num_gpus=0 or num_gpus=None "
    "(default). To enable this behavior and turn off this error message, set "
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0\n",
    "  warnings.warn(\n",
    "\x1b[92mINFO \x1b[0m:      Starting logstream for run_id `15638917762798769431`\n",
    "\x1b[92mINFO \x1b[0m:      Exiting logstream\n",
    "\x1b[92mINFO \x1b[0m:      \n",
    "\x1b[36m(ClientAppActor pid=13522)\x1b[0m \x1b[93mWARNING \x1b[0m:   Manually terminating "
    "ClientAppActor\n",
]
KEPT_LINES = [
    "\x1b[92mINFO \x1b[0m:      Federation `@none/default` (10 simulated SuperNodes)\n",
    "\x1b[92mINFO \x1b[0m:      step 20 epoch 2: accuracy 0.3806 loss 2.2697 up 13.10 MB\n",
    "Successfully started run 6744389096591014309\n",
    "/x/mine.py:3: UserWarning: something of ours\n",
    "Traceback (most recent call last):\n",
]


def test_known_noise_is_dropped_and_everything_else_is_shown():
    assert all(is_noise(line) for line in NOISE_LINES)
    assert not any(is_noise(line) for line in KEPT_LINES)
    shown: list[str] = []
    log = RunLog(shown.append)
    for line in NOISE_LINES + KEPT_LINES:
        log(line)
    assert shown == KEPT_LINES


def test_progress_lines_go_to_the_sink_and_not_to_the_screen():
    shown, snapshots = [], []
    log = RunLog(shown.append, snapshots.append)
    snapshot = Progress(3, 10, 0, 1, 100, 1.0)
    log(f"\x1b[92mINFO \x1b[0m:      {snapshot.to_line()}\n")
    assert snapshots == [snapshot] and shown == []
    RunLog(shown.append)(snapshot.to_line() + "\n")  # no sink: dropped, still not shown
    assert shown == []


def test_the_verdict_follows_the_serverapps_lines_not_only_the_exit_code():
    ok = RunLog(lambda line: None)
    ok(result_line({"accuracy": 0.97, "steps": 225, "files": {"history": "/r/x.csv"}}) + "\n")
    assert ok.result == {"accuracy": 0.97, "steps": 225, "files": {"history": "/r/x.csv"}}
    assert ok.verdict(0) is None
    assert ok.verdict(1) == "flwr run exited with code 1"

    failed = RunLog(lambda line: None)
    failed(failure_line(MemoryError("Unable to allocate 3.64 TiB\nfor an array")) + "\n")
    assert failed.verdict(0) == "the ServerApp failed: MemoryError: Unable to allocate 3.64 TiB"

    silent = RunLog(lambda line: None)
    assert silent.verdict(0) == "the ServerApp ended without writing results"


def test_a_failure_line_is_one_line_with_the_error_type():
    assert failure_line(ValueError("bad\nmore")) == f"{FAILED_PREFIX}ValueError: bad"
    assert failure_line(KeyError()) == f"{FAILED_PREFIX}KeyError"
