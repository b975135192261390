"""The fuzzer's quick run: every codec, both sides, no crash, no hang, every rejection reasoned."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from simulations import fuzz
from simulations.fuzz_mutations import REPLY_MUTATIONS, SERVER_MUTATIONS, huge_header


@pytest.mark.slow  # every kind of malformed reply for every codec, both sides
def test_quick_fuzz_finds_no_crash_no_hang_and_writes_runs_and_env(tmp_path):
    level = logging.getLogger("flwr").level
    summary = fuzz.main(["--quick", "--results", str(tmp_path)])
    assert logging.getLogger("flwr").level == level  # the fuzzer's quiet logging is undone
    assert set(summary.index) == {"server", "client"}
    assert (summary["crashes"] == 0).all() and (summary["hangs"] == 0).all()
    assert (summary["reasonless"] == 0).all()
    assert summary.loc["server", "accepted_bad"] == 0
    (out,) = (tmp_path / "fuzz").iterdir()
    runs = pd.read_csv(out / "runs.csv")
    assert set(runs["codec"]) == set(fuzz.codec_specs())
    assert json.loads((out / "env.json").read_text())["cases"] == 2 * len(fuzz.codec_specs())


def test_the_plan_gives_every_codec_its_share_and_covers_every_pair():
    pairs = len(fuzz.TARGETS) * len(REPLY_MUTATIONS)
    triples = fuzz.plan(
        pairs * len(fuzz.codec_specs()), list(fuzz.TARGETS), sorted(REPLY_MUTATIONS), 0
    )
    for codec in fuzz.codec_specs():
        mine = {t[1:] for t in triples if t[0] == codec}
        assert len(mine) == pairs
    assert set(SERVER_MUTATIONS) > {"order_values", "config_values", "bad_json"}


def test_a_huge_header_case_is_rejected_with_a_reason():
    harness = fuzz.ServerHarness("identity", "every_epoch")
    row = harness.case("train", huge_header, np.random.default_rng(0))
    assert row["applied"] and row["strict"] and row["rejected"] and not row["crash"]
    assert "array" in row["reason"]
