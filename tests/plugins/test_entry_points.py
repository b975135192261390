"""Codecs and samplers that an installed package declares are found without an import line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from flwr_split.codecs import CodecError, get_codec, registered_codecs
from flwr_split.sampling import get_sampler, registered_samplers
from tests.plugins import CODEC_ID, PLUGIN_MODULE, SAMPLER_ID, plugin_env, write_dist_info

COUNTS = [5, 0, 3]
TURNS_PLAN = [[4, 0, 0], [1, 0, 0], [0, 0, 3]]

# Run in a fresh interpreter that has the plugin only on PYTHONPATH and never imports it.
FRESH_PROCESS = f"""
import json, sys
import numpy as np, torch
from flwr_split.codecs import get_codec
from flwr_split.sampling import get_sampler
assert {PLUGIN_MODULE!r} not in sys.modules
codec = get_codec("{CODEC_ID}:factor=4")
tensor = torch.linspace(-3, 3, 12).reshape(3, 4)
plan = get_sampler("{SAMPLER_ID}").plan(np.array({COUNTS}), 4, 0)
print(json.dumps({{
    "codec": type(codec).__module__,
    "config": codec.get_config(),
    "round_trip": bool(torch.equal(codec.decode(codec.encode(tensor)), tensor)),
    "plan": plan.tolist(),
}}))
"""


@pytest.mark.usefixtures("installed_plugin")
def test_declared_codec_is_listed_and_round_trips():
    assert CODEC_ID in registered_codecs()
    assert PLUGIN_MODULE not in sys.modules
    codec = get_codec(f"{CODEC_ID}:factor=4")
    assert type(codec).__module__ == f"{PLUGIN_MODULE}.codec"
    tensor = torch.randn(2, 3, 5)
    encoded = codec.encode(tensor)
    assert np.array_equal(encoded.arrays["scaled"], (tensor * 4).numpy().reshape(-1))
    assert torch.equal(codec.decode(encoded), tensor)
    assert get_codec(codec.get_config()) == codec


@pytest.mark.usefixtures("installed_plugin")
@pytest.mark.parametrize("spec", [f"{CODEC_ID}:factor=0", f"{CODEC_ID}:bits=8"])
def test_declared_codec_rejects_bad_options(spec):
    with pytest.raises(CodecError, match="factor|bad options"):
        get_codec(spec)


@pytest.mark.usefixtures("installed_plugin")
def test_declared_sampler_is_listed_and_plans():
    assert SAMPLER_ID in registered_samplers()
    plan = get_sampler(SAMPLER_ID).plan(np.array(COUNTS), 4, seed=0)
    assert plan.dtype == np.int64 and plan.tolist() == TURNS_PLAN


def test_a_fresh_process_finds_both_through_pythonpath():
    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS],
        env=plugin_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "codec": f"{PLUGIN_MODULE}.codec",
        "config": {"id": CODEC_ID, "factor": 4.0},
        "round_trip": True,
        "plan": TURNS_PLAN,
    }


@pytest.mark.usefixtures("installed_plugin")
@pytest.mark.parametrize(
    ("build", "error", "kind", "plugin_id", "builtin"),
    [
        (get_codec, CodecError, "codec", CODEC_ID, "quant"),
        (get_sampler, ValueError, "sampler", SAMPLER_ID, "ugs"),
    ],
)
def test_unknown_name_error_names_it_the_installed_ones_and_the_group(
    build, error, kind, plugin_id, builtin
):
    with pytest.raises(error, match=f"unknown {kind} 'nosuch'") as info:
        build("nosuch:x=1")
    message = str(info.value)
    assert plugin_id in message and builtin in message
    assert f"flwr_split.{kind}s" in message


@pytest.fixture
def misdeclared(installed_plugin, tmp_path, monkeypatch):
    """A second package that declares the plugin's classes under the wrong names."""
    write_dist_info(
        tmp_path,
        "misdeclared",
        f"[flwr_split.codecs]\nwrong_id = {PLUGIN_MODULE}.codec:Scale\n"
        f"[flwr_split.samplers]\nnot_a_sampler = {PLUGIN_MODULE}.codec:Scale\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))


@pytest.mark.usefixtures("misdeclared")
def test_entry_points_must_name_a_class_of_the_kind_with_that_id():
    with pytest.raises(CodecError, match="not a Codec class with codec_id 'wrong_id'"):
        get_codec("wrong_id")
    with pytest.raises(ValueError, match="not a Sampler class with sampler_id 'not_a_sampler'"):
        get_sampler("not_a_sampler")
