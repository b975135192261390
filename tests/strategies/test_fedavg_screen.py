"""One poisoned FedAvg upload is rejected with a reason and changes nothing else; a
coordinate-wise median or trimmed mean holds where the norm screen lets an upload through."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from flwr.app import Context, Message, RecordDict

from flwr_split.server.fedavg import (
    Upload,
    aggregate,
    average,
    screen,
    screen_gradients,
    weights_norm,
)
from flwr_split.wire import KEY_BOTTOM, KEY_BOTTOM_GRAD, MSG_STEP, ClientInfo
from flwr_split.wire.arrays import from_array, to_array
from tests.helpers import run_inprocess, tampering_app

BAD = 1


def huge_bias_in(key: str) -> Callable[[RecordDict], None]:
    """Return a tamper that sets one bias value of record ``key`` to 3e38 (finite in float32)."""

    def tamper(content: RecordDict) -> None:
        if key not in content:
            return
        record = content[key]
        name = next(k for k in record if k.endswith("bias"))
        values = from_array(record[name])
        values[0] = 3e38  # the weighted float32 sum of such weights would overflow
        record[name] = to_array(values)

    return tamper


huge_bias = huge_bias_in(KEY_BOTTOM)
huge_gradient = huge_bias_in(KEY_BOTTOM_GRAD)


def withheld(content: RecordDict) -> None:
    content.pop(KEY_BOTTOM, None)


def negated(content: RecordDict) -> None:
    """Send -3 times the bottom: within the norm screen, and the mean of 4 becomes zero."""
    if KEY_BOTTOM not in content:
        return
    record = content[KEY_BOTTOM]
    for name in list(record.keys()):
        values = from_array(record[name])
        if values.dtype.kind == "f":
            record[name] = to_array((-3.0 * values).astype(values.dtype))


def run(app: Callable[[Message, Context], Message] | None, nodes: int = 3, **kwargs: object):
    return run_inprocess(
        nodes, client_app=app, epochs=2, max_steps=None, eval_every=10_000, **kwargs
    )


@pytest.mark.slow  # trains two runs of full epochs
def test_a_3e38_bias_is_rejected_and_the_run_matches_the_run_without_that_upload():
    _, poisoned, _ = run(tampering_app(BAD, MSG_STEP, huge_bias))
    _, without, _ = run(tampering_app(BAD, MSG_STEP, withheld))
    _, honest, _ = run(None)
    reasons = [r for r in poisoned.rejected if r[1] == BAD]
    assert len(reasons) == 2 and all("norm 3e+38 exceeds" in r[2] for r in reasons)
    assert np.isfinite(poisoned.history["accuracy"]).all()
    assert poisoned.history["accuracy"].iloc[-1] == without.history["accuracy"].iloc[-1]
    assert poisoned.history["loss"].iloc[-1] == pytest.approx(without.history["loss"].iloc[-1])
    assert abs(poisoned.history["accuracy"].iloc[-1] - honest.history["accuracy"].iloc[-1]) < 0.1


def test_a_3e38_bottom_gradient_is_rejected_every_step_and_the_others_train():
    app = tampering_app(BAD, MSG_STEP, huge_gradient)
    _, result, _ = run_inprocess(3, client_app=app, sync="every_step", max_steps=6, eval_every=3)
    assert [(step, part) for step, part, _ in result.rejected] == [(s, BAD) for s in range(6)]
    assert all(
        "bottom gradient gain" in r[2] and "20x the reference" in r[2] for r in result.rejected
    )
    assert np.isfinite(result.history["accuracy"]).all()
    assert np.isfinite(result.history["train_loss"]).all()


def client(partition: int) -> ClientInfo:
    return ClientInfo(node_id=10 + partition, partition_id=partition, train_count=8, test_count=8)


def test_screen_uses_the_server_weights_and_the_median_when_they_are_zero():
    server = {"w": torch.ones(4), "n": torch.tensor(3)}
    uploads = [
        Upload(client(k), 1, {"w": torch.full((4,), v)}) for k, v in enumerate([1.0, 2.0, 50.0])
    ]
    accepted, rejected = screen(uploads, server)
    assert [u.client.partition_id for u in accepted] == [0, 1]
    assert rejected[0][0].partition_id == 2 and "10x the reference 2)" in rejected[0][1]
    accepted, rejected = screen(uploads, {"w": torch.zeros(4)})  # median 4: bound 40
    assert [u.client.partition_id for u in accepted] == [0, 1] and len(rejected) == 1


def test_the_gradient_screen_measures_gain_not_norm_per_sample():
    # Partition 0 has one misclassified sample: a large cut gradient, a large
    # bottom gradient, thousands of times the others' norm per sample (the old
    # yardstick rejected such honest clients). Its gain is like theirs.
    slices = [(1, 10.0, 5.0), (30, 0.5, 0.3), (30, 0.4, 0.25), (30, 0.45, 0.3), (30, 13.0, 0.3)]
    uploads = [
        Upload(client(k), n, {"w": torch.full((4,), norm / 2)})
        for k, (n, norm, _) in enumerate(slices)
    ]
    sent = {10 + k: cut for k, (_, _, cut) in enumerate(slices)}
    accepted, rejected = screen_gradients(uploads, sent)
    assert [u.client.partition_id for u in accepted] == [0, 1, 2, 3]
    (bad, reason), *others = rejected  # partition 4: gain 43 against a median of 1.6
    assert bad.partition_id == 4 and not others
    assert reason.startswith("bottom gradient gain 43.3 exceeds") and "20x the reference" in reason
    zero_cut = {**sent, 10: 0.0}  # a nonzero gradient from a zero cut gradient
    assert screen_gradients(uploads[:4], zero_cut)[1][0][0].partition_id == 0


@pytest.mark.slow  # a whole epoch
def test_honest_clients_pass_the_gradient_screen_late_in_an_epoch():
    # With a norm per sample as the yardstick, 5 honest clients were rejected
    # between steps 68 and 71 of this epoch (up to 4,900x the median).
    _, result, _ = run_inprocess(
        20, sampler="fls", batch_size=16, sync="every_step", max_steps=None
    )
    assert len(result.steps) == 72 and not result.rejected


def test_the_average_is_weighted_in_float64_and_cast_back():
    big = float(np.finfo(np.float32).max) / 2
    uploads = [
        Upload(client(0), 3, {"w": torch.tensor([big])}),
        Upload(client(1), 1, {"w": torch.tensor([big])}),
    ]
    result = average(uploads, {"w": torch.zeros(1)})
    assert result["w"].dtype == torch.float32 and torch.isfinite(result["w"]).all()
    assert weights_norm({"w": torch.tensor([3e38, 3e38])}) == pytest.approx(3e38 * 2**0.5)
    assert weights_norm({"n": torch.tensor([5])}) == 0.0  # integer buffers are not weights


@pytest.mark.slow
def test_a_median_or_trimmed_mean_holds_where_an_upload_passes_the_norm_screen():
    bad = tampering_app(BAD, MSG_STEP, negated)
    final = {
        (rule, app is bad): run(app, 4, aggregation=rule, trim_fraction=0.25)[1]
        for rule, app in [("mean", bad), ("median", None), ("median", bad), ("trimmed-mean", bad)]
    }
    assert not final["median", True].rejected  # the norm screen let the upload through
    assert not final["trimmed-mean", True].rejected
    honest = final["median", False].final_accuracy
    # The mean of w, w, w and -3w is 0: the bottom is wiped at the first epoch's end.
    assert honest - final["mean", True].final_accuracy > 0.1
    assert abs(final["median", True].final_accuracy - honest) < 0.05
    assert abs(final["trimmed-mean", True].final_accuracy - honest) < 0.05


def test_median_and_trimmed_mean_are_coordinate_wise_and_ignore_the_weights():
    values = [[1.0, -4.0], [2.0, 100.0], [3.0, 0.0], [1000.0, 2.0]]
    uploads = [Upload(client(k), 10**k, {"w": torch.tensor(v)}) for k, v in enumerate(values)]
    like = {"w": torch.zeros(2)}
    assert aggregate(uploads, like, "median")["w"].tolist() == [2.5, 1.0]
    assert aggregate(uploads, like, "trimmed-mean", 0.25)["w"].tolist() == [2.5, 1.0]
    assert aggregate(uploads, like, "trimmed-mean", 0.0)["w"].tolist() == [251.5, 24.5]
    assert aggregate(uploads[:3], like, "median")["w"].tolist() == [2.0, 0.0]
    assert aggregate(uploads, like, "mean")["w"].tolist() == pytest.approx(
        average(uploads, like)["w"].tolist()
    )
    half = aggregate(uploads, {"w": torch.zeros(2, dtype=torch.float16)}, "median")["w"]
    assert half.dtype == torch.float16
