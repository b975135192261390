"""The codec speed benchmark in its --quick form: one finite row per registered codec."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from flwr_split.codecs import registered_codecs
from simulations import bench_codecs

MEASURED = [
    "codec_ms",
    "clone_ms",
    "x_clone",
    "mb_per_s",
    "bytes_ratio",
    "resnet_codec_ms",
    "resnet_bottom_ms",
    "resnet_share",
    "lstm_codec_ms",
    "lstm_bottom_ms",
    "lstm_share",
]


@pytest.mark.slow  # times every codec
def test_quick_run_writes_a_finite_row_per_registered_codec(tmp_path):
    bench_codecs.main(["--quick", "--results", tmp_path])
    (out,) = (tmp_path / "bench_codecs").iterdir()
    assert {p.name for p in out.iterdir()} == {"runs.csv", "codecs.png", "env.json"}
    frame = pd.read_csv(out / "runs.csv")
    assert sorted(frame["codec"]) == registered_codecs()
    values = frame[MEASURED].to_numpy(dtype=float)
    assert np.isfinite(values).all() and (values > 0).all()
    assert json.loads((out / "env.json").read_text())["quick"] is True


def test_a_tensor_with_negatives_gets_the_signed_spec_of_a_non_negative_codec():
    bench = {"specs": {"slfac": "slfac:theta=1.0", "ms": "ms:bits=3"}}
    negative = torch.tensor([-1.0, 2.0])
    assert bench_codecs.spec_for(bench, "ms", negative) == "ms:ratio=0.99,bits=2,signed=true"
    assert bench_codecs.spec_for(bench, "ms", negative.abs()) == "ms:bits=3"
    assert bench_codecs.spec_for(bench, "fp16", negative) == "fp16"
    assert bench_codecs.spec_for(bench, "quant", negative) == "quant:bits=8"
    assert bench_codecs.spec_for(bench, "slfac", negative) == "slfac:theta=1.0"
