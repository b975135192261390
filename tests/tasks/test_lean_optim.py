"""`LeanOptimizer` makes exactly the updates and state of torch's SGD and Adam."""

from __future__ import annotations

import pytest
import torch

from flwr_split.client.state import load_optimizer_state, optimizer_state_to_record
from flwr_split.tasks.lean_optim import LeanOptimizer
from flwr_split.tasks.optim import OptimizerConfig


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten())


def _train(model, optimizer, inputs, steps, restore_every=0):
    for step in range(steps):
        optimizer.zero_grad()
        model(inputs).square().mean().backward()
        model[0].bias.grad = None if step == 1 else model[0].bias.grad  # a param without grad
        optimizer.step()
        if restore_every and step % restore_every == 0:  # through context.state and back
            record = optimizer_state_to_record(optimizer)
            optimizer = LeanOptimizer(optimizer.config, model.parameters())
            load_optimizer_state(optimizer, record)
    return optimizer


@pytest.mark.parametrize(
    "config",
    [OptimizerConfig("sgd", 0.05, 0.9), OptimizerConfig("sgd", 0.1, 0.0), OptimizerConfig("adam")],
)
@pytest.mark.parametrize("restore_every", [0, 2])
def test_updates_and_state_equal_torchs_optimizer(config, restore_every):
    inputs = torch.randn(5, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    ours, theirs = _model(0), _model(0)
    lean = _train(ours, LeanOptimizer(config, ours.parameters()), inputs, 6, restore_every)
    reference = _train(theirs, config.build(theirs.parameters()), inputs, 6)
    for mine, torchs in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(mine, torchs)
    expected = optimizer_state_to_record(reference)
    got = optimizer_state_to_record(lean)
    assert sorted(got) == sorted(expected)
    assert all(got[key].data == expected[key].data for key in expected)


def test_zero_grad_to_zero_keeps_the_tensors():
    layer = torch.nn.Linear(3, 2)
    layer(torch.ones(1, 3)).sum().backward()
    optimizer = LeanOptimizer(OptimizerConfig(), layer.parameters())
    grad = layer.weight.grad
    optimizer.zero_grad(set_to_none=False)
    assert layer.weight.grad is grad and not grad.any()
    optimizer.zero_grad()
    assert layer.weight.grad is None
