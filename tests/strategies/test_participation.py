"""Per-step participation of C of N clients through the sampler."""

from __future__ import annotations

from tests.helpers import run_inprocess


def test_at_most_c_clients_send_activations_per_step_and_all_train_in_an_epoch():
    _, result, grid = run_inprocess(6, sampler="fixed:clients=2", max_steps=None, batch_size=64)
    acts = result.traffic.query("phase == 'train' and kind == 'activations'")
    assert acts.groupby("step")["partition_id"].nunique().max() <= 2
    assert set(acts["partition_id"]) == set(range(6))
    assert not result.rejected
    assert result.history["eval_samples"].iloc[-1] == 360
