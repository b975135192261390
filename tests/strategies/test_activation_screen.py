"""Finite but huge activations are rejected before the top's step; the others train on."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import RecordDict

from flwr_split.server.batches import CutBatch
from flwr_split.server.top import TopTrainer
from flwr_split.wire import KEY_ACTS, MSG_STEP, ClientInfo
from flwr_split.wire.arrays import from_array, to_array
from tests.helpers import run_inprocess, tampering_app

BAD = 1


def scaled_activations(content: RecordDict) -> None:
    """Multiply the identity codec's activation values by 1e30 (still finite in float32)."""
    if KEY_ACTS not in content:
        return
    record = content[KEY_ACTS]
    record["values"] = to_array(from_array(record["values"]) * np.float32(1e30))


def batch(partition: int, scale: float) -> CutBatch:
    client = ClientInfo(node_id=10 + partition, partition_id=partition, train_count=8, test_count=8)
    acts = torch.full((2, 3), scale)
    return CutBatch(client, acts, torch.zeros(2, dtype=torch.int64))


def test_the_screen_compares_root_mean_squares_with_the_median():
    rejected = []
    batches = [batch(0, 1.0), batch(1, 3.0), batch(2, 19.0), batch(3, 21.0), batch(4, 0.5)]
    kept = TopTrainer._screen_magnitudes(7, batches, lambda *r: rejected.append(r))
    assert len(kept) == 5  # median 3: bound 60
    assert rejected == []
    batches.append(batch(5, 1e30))
    kept = TopTrainer._screen_magnitudes(7, batches, lambda *r: rejected.append(r))
    assert [b.client.partition_id for b in kept] == [0, 1, 2, 3, 4]
    ((step, client, reason),) = rejected
    assert step == 7 and client.partition_id == 5
    assert reason.startswith("activations root mean square 1e+30 exceeds")
    two = [batch(0, 1.0), batch(1, 1e30)]  # the median of two is their mean
    assert len(TopTrainer._screen_magnitudes(0, two, lambda *r: rejected.append(r))) == 2


@pytest.mark.parametrize("sync", ["every_epoch", "every_step"])
def test_huge_finite_activations_are_rejected_every_step_and_the_others_train(sync):
    app = tampering_app(BAD, MSG_STEP, scaled_activations)
    _, result, _ = run_inprocess(4, client_app=app, sync=sync, max_steps=6, eval_every=3)
    assert [(step, part) for step, part, _ in result.rejected] == [(s, BAD) for s in range(6)]
    assert all("activations root mean square" in r[2] for r in result.rejected)
    assert np.isfinite(result.history["accuracy"]).all()
    assert np.isfinite(result.history["train_loss"]).all()
