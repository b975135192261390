"""One SuperNode of a real deployment sends corrupted replies: the run goes on without it.

`tests/apps/corrupt_app` is the project's ServerApp with a ClientApp whose last
partition damages every training and evaluation reply: a ``.npy`` header that
claims 10^12 floats, metadata JSON nested 200,000 deep, a 500 MiB extra array.
It runs on the shared honest deployment (``shared_deployment``), right after
the project's App ran the same job there: the ServerApp's normal peak RSS.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tests.app.deployment_runs import HONEST_NODES as NODES
from tests.app.deployment_runs import HONEST_STEPS as STEPS

RSS_RATIO = 1.5

pytestmark = pytest.mark.slow


def test_the_run_completes_and_only_the_corrupting_client_is_dropped(shared_deployment):
    corrupt = shared_deployment[1]
    done, out = corrupt.done, corrupt.out
    assert done.returncode == 0, done.stdout + done.stderr
    assert "final test accuracy" in done.stdout, done.stdout + done.stderr
    drops = re.findall(r"step (\d+): dropping partition (\d+) \(node \d+\): (.*)", done.stdout)
    assert {int(part) for _, part, _ in drops} == {NODES - 1}
    assert sorted({int(step) for step, _, _ in drops}) == list(range(STEPS + 1))  # + evaluation
    history = pd.read_csv(out / "corrupt.csv")
    steps = pd.read_csv(out / "corrupt_steps.csv")
    assert list(steps["active_clients"]) == [NODES - 1] * STEPS  # the others trained
    assert history["accuracy"].notna().all() and history["eval_samples"].iloc[-1] > 0
    assert corrupt.left_after_stop == set()


def test_the_serverapp_stays_within_one_and_a_half_times_its_normal_memory(shared_deployment):
    honest, corrupt = (run.extra["serverapp_peak_rss"] for run in shared_deployment)
    print(f"ServerApp peak RSS: honest {honest / 2**20:.0f} MiB, corrupt {corrupt / 2**20:.0f} MiB")
    assert 0 < corrupt <= RSS_RATIO * honest
