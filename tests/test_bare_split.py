"""The bare SL step of `bench_step_time` trains the split model as plain SGD would."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from flwr_split.tasks import TaskConfig, build_model, load_task_data
from simulations.bare_split import BareSplit

BATCH, LR, MOMENTUM, STEPS = 8, 0.05, 0.9, 5


def plain_sgd(clients: int) -> tuple[list[float], nn.Module]:
    """Train one bottom per client's share and a top on their union: losses and the top."""
    train, _ = load_task_data(TaskConfig())
    shares = [(torch.from_numpy(train.x[k::clients]), train.y[k::clients]) for k in range(clients)]
    models = [build_model(TaskConfig()) for _ in range(clients)]
    bottoms, top = [bottom for bottom, _ in models], models[0][1]
    parameters = [p for b in bottoms for p in b.parameters()] + list(top.parameters())
    optimizer = torch.optim.SGD(parameters, LR, MOMENTUM)
    rngs = [np.random.default_rng(len(y)) for _, y in shares]
    losses = []
    for _ in range(STEPS):
        idx = [
            rng.choice(len(y), BATCH, replace=False)
            for rng, (_, y) in zip(rngs, shares, strict=True)
        ]
        acts = torch.cat([b(x[i]) for b, (x, _), i in zip(bottoms, shares, idx, strict=True)])
        labels = np.concatenate([y[i] for (_, y), i in zip(shares, idx, strict=True)])
        loss = nn.functional.cross_entropy(top(acts), torch.from_numpy(labels).long())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses, top


@pytest.mark.parametrize("clients", [1, 3])
def test_bare_split_equals_sgd_on_the_same_bottoms_and_top(clients):
    # Each step sends the gradient of the last forward down with the order of the next one, so
    # after n steps the top has taken n SGD steps and each bottom n - 1, those of plain SGD on
    # the same batches; a gradient sent to the wrong client would change every later loss.
    split = BareSplit(clients, BATCH, LR, MOMENTUM)
    losses = [split.step() for _ in range(STEPS)]
    expected, top = plain_sgd(clients)
    assert np.allclose(losses, expected, rtol=1e-5)
    for got, want in zip(split.top.parameters(), top.parameters(), strict=True):
        assert torch.allclose(got, want, atol=1e-6)
