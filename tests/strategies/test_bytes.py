"""Measured bytes on the wire match the codec arithmetic."""

from __future__ import annotations

import math

import pytest

from flwr_split.tasks import TaskConfig, builtin_cut_shape
from tests.helpers import run_inprocess

BATCH = 8


@pytest.mark.parametrize(
    ("codec", "expected"),
    [
        ("identity", lambda n: 4 * n),
        ("fp16", lambda n: 2 * n),
        ("quant:bits=8", lambda n: math.ceil(8 * n / 8) + 8),
        ("quant:bits=3", lambda n: math.ceil(3 * n / 8) + 8),
    ],
)
def test_uplink_activation_bytes_follow_the_codec_arithmetic(codec, expected):
    _, result, _ = run_inprocess(3, uplink=codec, max_steps=3, batch_size=BATCH)
    width = math.prod(builtin_cut_shape(TaskConfig()))
    assert width == 16 * 8 * 8
    acts = result.traffic.query("phase == 'train' and kind == 'activations'")
    assert len(acts) == 3 * 3  # one row per client per step
    assert set(acts["direction"]) == {"up"}
    assert (acts["nbytes"] == expected(BATCH * width)).all()
    labels = result.traffic.query("phase == 'train' and kind == 'labels'")
    assert (labels["nbytes"] == BATCH).all()  # uint8 labels


def test_identity_uplink_is_four_bytes_per_float_per_client_per_step():
    _, result, _ = run_inprocess(4, max_steps=2, batch_size=BATCH)
    per_step = result.traffic.query("kind == 'activations'").groupby("step")["nbytes"].sum()
    assert (per_step == 4 * 4 * BATCH * 1024).all()


def test_gradient_bytes_downlink_and_message_size_exceeds_payload():
    _, result, _ = run_inprocess(2, downlink="fp16", max_steps=3, batch_size=BATCH)
    grads = result.traffic.query("kind == 'gradients'")
    assert set(grads["direction"]) == {"down"}
    assert (grads["nbytes"] == 2 * BATCH * 1024).all()
    messages = result.traffic.query("kind == 'message'")
    payload = result.traffic.query("kind not in ['message', 'control']")
    total_payload = payload.groupby(["step", "phase", "partition_id", "direction"])["nbytes"].sum()
    total_message = messages.set_index(["step", "phase", "partition_id", "direction"])["nbytes"]
    assert (total_message.loc[total_payload.index] > total_payload).all()


def test_history_cumulative_bytes_equal_the_traffic_table():
    _, result, _ = run_inprocess(3, uplink="quant:bits=4", max_steps=4, eval_every=2)
    traffic = result.traffic
    training = traffic[traffic["kind"].isin(["activations", "gradients", "labels", "sync"])]
    last = result.history.iloc[-1]
    assert last["bytes_up"] == training.query("direction == 'up'")["nbytes"].sum()
    assert last["bytes_down"] == training.query("direction == 'down'")["nbytes"].sum()
    assert list(result.history["step"]) == [2, 4]


def test_history_activation_and_gradient_bytes_equal_the_traffic_table():
    _, result, _ = run_inprocess(3, uplink="fp16", downlink="quant:bits=8", max_steps=3)
    last = result.history.iloc[-1]
    traffic = result.traffic.query("phase != 'eval'")
    assert last["activation_bytes"] == traffic.query("kind == 'activations'")["nbytes"].sum()
    assert last["gradient_bytes"] == traffic.query("kind == 'gradients'")["nbytes"].sum()
