"""Samplers end to end on the in-process grid (checks 7 and 13).

A PSL step with per-step bottom sync and a GroupNorm client side is a
centralized step on the union batch, and the batches the clients send are the
ones the server's plan names.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from flwr_split.client.state import STATE_WEIGHTS
from flwr_split.common.seeds import epoch_seed
from flwr_split.sampling import get_sampler
from flwr_split.tasks import TaskConfig, build_model
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.testing.replay import EpochReplay
from tests.helpers import run_inprocess

TASK = TaskConfig(
    partitioner="extended-dirichlet", classes_per_client=2, dirichlet_alpha=3.0, group_norm=True
)
CLIENTS = 6


def record_union_labels(monkeypatch) -> list[np.ndarray]:
    """Capture the labels of every union batch the server trains on."""
    from flwr_split.server.history import RunHistory

    seen: list[np.ndarray] = []
    original = RunHistory.note_batch

    def note_batch(self, labels, active):
        seen.append(labels.numpy().copy())
        original(self, labels, active)

    monkeypatch.setattr(RunHistory, "note_batch", note_batch)
    return seen


@pytest.mark.parametrize("steps", [1, 10])
def test_a_psl_step_equals_a_centralized_step_on_the_union_batch(steps):
    optimizer = OptimizerConfig("sgd", 0.05, 0.0)
    strategy, result, grid = run_inprocess(
        CLIENTS,
        task=TASK,
        sampler="ugs",
        batch_size=32,
        sync="every_step",
        optimizer=optimizer,
        max_steps=steps,
    )
    assert not result.rejected
    replay = EpochReplay(TASK, CLIENTS)
    plan = get_sampler("ugs").plan(replay.counts, 32, epoch_seed(TASK.seed, 0))
    bottom, top = build_model(TASK)
    model = nn.Sequential(bottom, top)
    sgd = optimizer.build(model.parameters())
    for batch in replay.batches(plan[:steps], epoch=0):
        sgd.zero_grad()
        nn.functional.cross_entropy(
            model(torch.from_numpy(batch.x)), torch.from_numpy(batch.y)
        ).backward()
        sgd.step()
    for ours, central in zip(
        [*strategy.bottom.parameters(), *strategy.top.parameters()], model.parameters(), strict=True
    ):
        assert torch.allclose(ours, central, atol=1e-6)
    # the final evaluation hands every client the server's bottom: all replicas are identical
    expected = {k: v.numpy() for k, v in strategy.bottom.state_dict().items()}
    for context in grid.contexts.values():
        replica = context.state[STATE_WEIGHTS]
        for name, value in expected.items():
            assert np.array_equal(replica[name].numpy(), value)


@pytest.mark.slow  # trains two whole epochs per sampler
@pytest.mark.parametrize(
    ("spec", "sync"),
    [
        ("ugs", "every_epoch"),
        ("lds:c=0.01", "every_step"),
        ("lds:c=0.05,delta=1.0", "every_step"),
        ("fpls", "every_epoch"),
        ("fls", "every_step"),
    ],
)
def test_clients_send_exactly_the_planned_samples(monkeypatch, spec, sync):
    seen = record_union_labels(monkeypatch)
    strategy, result, _ = run_inprocess(
        CLIENTS, task=TASK, sampler=spec, batch_size=64, sync=sync, epochs=2, max_steps=None
    )
    assert not result.rejected
    replay = EpochReplay(TASK, CLIENTS)
    expected = []
    for epoch in range(2):
        sampler = get_sampler(spec)
        if epoch:  # the delays the strategy measured in epoch 0 (only LDS keeps them)
            sampler.set_delays(getattr(strategy.sampler, "delays", None))
        plan = sampler.plan(replay.counts, 64, epoch_seed(TASK.seed, epoch))
        assert len(np.unique(plan)) > 2  # per-step counts vary
        assert spec == "ugs" or (plan == 0).any()  # some clients sit out some steps
        expected.extend(b.y for b in replay.batches(plan, epoch))
    assert len(seen) == len(expected) == len(result.steps)
    assert all(np.array_equal(a, b) for a, b in zip(seen, expected, strict=True))
    assert (result.steps["batch"] == [len(y) for y in expected]).all()
    assert result.history["batch_deviation"].between(0, 2).all()
    assert result.history["k_effective"].iloc[-1] == np.count_nonzero(replay.counts)


@pytest.mark.parametrize("spec", ["ugs", "lds:c=0.5,delta=1.0", "fpls", "fls", "fixed:clients=2"])
def test_schedules_are_bit_for_bit_reproducible_from_the_seed(spec):
    counts = np.array([17, 0, 40, 3, 99, 25])
    delays = np.array([1.0, 1.0, 3.0, 1.0, 0.5, 2.0])

    def schedule(seed):
        sampler = get_sampler(spec)
        sampler.set_delays(delays)
        return sampler.plan(counts, 16, seed)

    first, again = schedule(11), schedule(11)
    assert first.dtype == again.dtype and first.tobytes() == again.tobytes()
    if spec.startswith(("ugs", "lds")):
        assert schedule(12).tobytes() != first.tobytes()


@pytest.mark.slow  # trains the same schedule in several runs
def test_server_and_clients_agree_on_the_schedule_across_runs(monkeypatch):
    seen = record_union_labels(monkeypatch)
    for _ in range(2):
        run_inprocess(CLIENTS, task=TASK, sampler="ugs", batch_size=64, max_steps=None)
    half = len(seen) // 2
    assert half > 0 and all(
        np.array_equal(a, b) for a, b in zip(seen[:half], seen[half:], strict=True)
    )
