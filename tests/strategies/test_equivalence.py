"""ParallelSplitLearning with every_step sync is centralized training on the union batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from flwr_split.sampling import get_sampler
from flwr_split.tasks import TaskConfig, build_model, client_data
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.wire import batch_indices
from tests.helpers import run_inprocess

NUM_CLIENTS, BATCH, STEPS = 4, 8, 20


def centralized_params(task: TaskConfig, optimizer: OptimizerConfig) -> list[torch.Tensor]:
    """Train the unsplit model with plain PyTorch on the same union batches."""
    bottom, top = build_model(task)
    model = nn.Sequential(bottom, top)
    opt = optimizer.build(model.parameters())
    data = [client_data(task, k, NUM_CLIENTS)[0] for k in range(NUM_CLIENTS)]
    counts = np.array([len(d) for d in data])
    step = 0
    for epoch in range(10):
        seed = int(np.random.SeedSequence([task.seed, epoch]).generate_state(1)[0])
        plan = get_sampler("fixed").plan(counts, BATCH, seed)
        offsets = np.vstack([np.zeros((1, NUM_CLIENTS), np.int64), np.cumsum(plan, axis=0)])
        for t in range(plan.shape[0]):
            xs, ys = [], []
            for k in range(NUM_CLIENTS):
                if plan[t, k]:
                    idx = batch_indices(task.seed, epoch, k, counts[k], offsets[t, k], plan[t, k])
                    xs.append(data[k].x[idx])
                    ys.append(data[k].y[idx])
            opt.zero_grad()
            loss = nn.functional.cross_entropy(
                model(torch.from_numpy(np.concatenate(xs))), torch.from_numpy(np.concatenate(ys))
            )
            loss.backward()
            opt.step()
            step += 1
            if step == STEPS:
                return [p.detach() for p in model.parameters()]
    raise AssertionError("not enough data for the requested steps")


@pytest.mark.parametrize(
    "optimizer",
    [OptimizerConfig("sgd", lr=0.1, momentum=0.9), OptimizerConfig("adam", lr=0.01)],
    ids=["sgd-momentum", "adam"],
)
def test_every_step_sync_equals_centralized_training_for_20_steps(optimizer):
    task = TaskConfig(seed=3)
    strategy, result, _ = run_inprocess(
        NUM_CLIENTS,
        task=task,
        epochs=10,
        max_steps=STEPS,
        sync="every_step",
        optimizer=optimizer,
        batch_size=BATCH,
    )
    assert not result.rejected
    split = [p.detach() for p in [*strategy.bottom.parameters(), *strategy.top.parameters()]]
    reference = centralized_params(task, optimizer)
    initial = [p.detach() for m in build_model(task) for p in m.parameters()]
    for ours, ref, init in zip(split, reference, initial, strict=True):
        assert not torch.allclose(ref, init), "training must move the parameters"
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
