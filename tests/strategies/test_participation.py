"""Per-step participation of C of N clients through the sampler."""

from __future__ import annotations

import pytest

from tests.helpers import run_inprocess


@pytest.mark.slow  # trains a whole epoch
def test_at_most_c_clients_send_activations_per_step_and_all_train_in_an_epoch():
    _, result, grid = run_inprocess(6, sampler="fixed:clients=2", max_steps=None, batch_size=64)
    acts = result.traffic.query("phase == 'train' and kind == 'activations'")
    assert acts.groupby("step")["partition_id"].nunique().max() <= 2
    assert set(acts["partition_id"]) == set(range(6))
    assert not result.rejected
    assert result.history["eval_samples"].iloc[-1] == 360


@pytest.mark.slow  # trains a whole epoch
def test_the_steps_table_has_one_row_per_step_with_its_participants_and_timings():
    strategy, result, _ = run_inprocess(6, sampler="fixed:clients=2", max_steps=None, batch_size=64)
    steps = result.steps
    acts = result.traffic.query("phase == 'train' and kind == 'activations'")
    assert list(steps["step"]) == sorted(acts["step"].unique())
    assert list(steps["clients"]) == list(acts.groupby("step")["partition_id"].nunique())
    assert steps["samples"].sum() == sum(c.train_count for c in strategy.clients)
    assert (steps["wall_s"] >= steps["exchange_s"]).all() and (steps["exchange_s"] > 0).all()
    assert (steps["client_compute_s"] > 0).all()
    assert steps["server_s"].to_numpy() == pytest.approx(
        (steps["wall_s"] - steps["exchange_s"]).to_numpy()
    )
    # Training steps are all of the clock but the epoch-end sync.
    assert 0 < steps["sim_time_s"].sum() <= strategy.clock.seconds


@pytest.mark.slow  # trains a whole epoch
def test_clients_that_sit_out_get_their_pending_gradient_with_their_next_message():
    # Groups of 2 take turns: a finished group's last gradients ride with the epoch-end sync
    # instead of costing an extra message each when the next group starts.
    strategy, result, _ = run_inprocess(6, sampler="fixed:clients=2", max_steps=None, batch_size=64)
    steps = result.steps
    assert (steps["messages"] == steps["clients"]).all()
    sync = result.traffic.query("phase == 'sync' and kind == 'message' and direction == 'down'")
    assert set(sync["partition_id"]) == set(range(6))
    # Every training sample's gradient was applied before the FedAvg.
    gradients = result.traffic.query("kind == 'gradients'")
    assert gradients["partition_id"].value_counts().sort_index().tolist() == [
        -(-c.train_count // 64) for c in sorted(strategy.clients, key=lambda c: c.partition_id)
    ]
