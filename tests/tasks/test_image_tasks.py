"""The image tasks: their models' cuts, the ResNet split's equivalence, a few training steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flwr_split.tasks import TaskConfig, build_model, builtin_cut_shape, cut_shape, get_task
from flwr_split.tasks.models.lenet import lenet
from flwr_split.tasks.models.pixels import Pixels
from flwr_split.tasks.models.resnet import ResNet18
from flwr_split.tasks.models.split import split_layers
from tests.data.available import needs_fashion_mnist, needs_mnist
from tests.helpers import run_inprocess


def pixels(batch, channels, size, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(
        0, 256, (batch, channels, size, size), dtype=torch.uint8, generator=generator
    )


@pytest.mark.parametrize("train", [False, True])
def test_resnet_bottom_then_top_computes_the_unsplit_model(train):
    torch.manual_seed(0)
    whole = ResNet18().train(train)
    bottom, top = split_layers(whole.blocks(), 1)  # the blocks share the model's modules
    images = pixels(6, 3, 32)
    with torch.no_grad():
        torch.testing.assert_close(top(bottom(images)), whole(images), rtol=0, atol=0)
    assert bottom(images).shape == (6, 64, 32, 32)
    split_parameters = [p for part in (bottom, top) for p in part.parameters()]
    assert len({id(p) for p in split_parameters}) == len(list(whole.parameters()))
    assert sum(p.numel() for p in split_parameters) == 11_173_962  # ResNet-18 for CIFAR-10


def test_the_cifar10_task_builds_the_seeded_resnet_split():
    config = TaskConfig(task="cifar10")
    bottom, top = build_model(config)
    torch.manual_seed(config.seed)
    reference = ResNet18().eval()
    bottom.eval(), top.eval()
    images = pixels(4, 3, 32, seed=1)
    with torch.no_grad():
        torch.testing.assert_close(top(bottom(images)), reference(images))
    assert cut_shape(config, (3, 32, 32), "uint8") == (64, 32, 32)
    assert get_task("cifar10").cuts == {1: "after the stem and BasicBlock 1 (64x32x32)"}


def test_group_norm_replaces_batch_norm_on_the_client_only():
    bottom, top = build_model(TaskConfig(task="cifar10", group_norm=True))
    kinds = {type(m).__name__ for m in bottom.modules()}
    assert "GroupNorm" in kinds and "BatchNorm2d" not in kinds
    assert "BatchNorm2d" in {type(m).__name__ for m in top.modules()}
    one = pixels(1, 3, 32)
    with torch.no_grad():  # a per-sample bottom: the same output alone or in a batch
        torch.testing.assert_close(
            bottom.train()(one), bottom(torch.cat([one, pixels(3, 3, 32)]))[:1]
        )


@pytest.mark.parametrize(("cut", "shape"), [(1, (16, 14, 14)), (2, (32, 5, 5))])
def test_lenet_cuts(cut, shape):
    bottom, top = split_layers(lenet(), cut)
    out = bottom(pixels(2, 1, 28))
    assert tuple(out.shape[1:]) == shape and top(out).shape == (2, 10)
    assert cut_shape(TaskConfig(task="mnist", cut=cut), (1, 28, 28), "uint8") == shape


def test_pixels_standardize_uint8_and_are_not_model_state():
    layer = Pixels((0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    image = torch.full((1, 3, 1, 1), 255, dtype=torch.uint8)
    torch.testing.assert_close(layer(image).flatten(), torch.tensor([1.0, 3.0, 1.0]))
    assert layer(image).dtype == torch.float32 and layer.state_dict() == {}
    with pytest.raises(ValueError, match="positive std"):
        Pixels((0.5,), (0.0,))


@pytest.mark.slow  # reads a real data set and trains
@pytest.mark.parametrize(
    "task",
    [
        pytest.param("mnist", marks=needs_mnist),
        pytest.param("fashion_mnist", marks=needs_fashion_mnist),
    ],
)
def test_the_task_trains_a_few_steps_in_process(task):
    config = TaskConfig(task=task, cut=1)
    assert builtin_cut_shape(config) == (16, 14, 14)
    strategy, result, _ = run_inprocess(3, task=config, max_steps=3, batch_size=8, eval_every=100)
    assert sum(c.train_count for c in strategy.clients) == 60_000
    assert result.history["eval_samples"].iloc[-1] == 10_000
    assert 0.0 <= result.history["accuracy"].iloc[-1] <= 1.0
    assert np.isfinite(result.history["train_loss"].iloc[-1])
    # cut-layer bytes are the fp32 maps: 16 x 14 x 14 floats per sample, 8 samples per client
    assert result.history["activation_bytes"].iloc[-1] >= 3 * 3 * 8 * 16 * 14 * 14 * 4
