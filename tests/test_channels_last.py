"""`channels_last` reorders only the cut-layer activations; the model computes the same function."""

from __future__ import annotations

import pytest
import torch

from flwr_split.codecs import get_codec
from flwr_split.options import RunSettings
from flwr_split.tasks import TaskConfig, build_model, builtin_cut_shape, load_task_data


@pytest.mark.parametrize(("task", "cut"), [("digits", 1), ("digits", 2), ("mnist1d", 1)])
def test_same_function_and_gradients_with_channel_vectors_contiguous(task, cut):
    first = TaskConfig(task=task, cut=cut)
    last = TaskConfig(task=task, cut=cut, channels_last=True)
    channels, *spatial = builtin_cut_shape(first)
    assert builtin_cut_shape(last) == (*spatial, channels)
    train, _ = load_task_data(first)
    inputs = torch.from_numpy(train.x[:6])
    labels = torch.from_numpy(train.y[:6])
    activations, grads = [], []
    for config in (first, last):
        bottom, top = build_model(config)
        cut_out = bottom(inputs)
        torch.nn.functional.cross_entropy(top(cut_out), labels).backward()
        activations.append(cut_out.detach())
        grads.append([p.grad for p in (*bottom.parameters(), *top.parameters())])
    reference, moved = activations
    assert moved.is_contiguous() and torch.equal(moved, reference.movedim(1, -1))
    for grad_first, grad_last in zip(*grads, strict=True):
        torch.testing.assert_close(grad_first, grad_last, rtol=1e-5, atol=1e-7)
    # A row cut into one sub-vector per position holds that position's channel vector.
    rows = moved.reshape(len(inputs), -1, channels)
    assert torch.equal(rows[:, 5], reference.flatten(2)[:, :, 5])


def test_fedlite_codewords_are_channel_vectors_of_positions():
    config = TaskConfig(task="digits", channels_last=True)
    bottom, _ = build_model(config)
    train, _ = load_task_data(config)
    with torch.no_grad():
        activations = bottom(torch.from_numpy(train.x[:8]))
    codec = get_codec("fedlite:q=64,clusters=8,precision=float16")
    payload = codec.encode(activations)
    codebooks = payload.arrays["codebooks"]
    assert codebooks.size == 8 * 16  # one 16-channel codeword per cluster
    decoded = codec.decode(payload).reshape(8, 64, 16)
    codebook = torch.from_numpy(codebooks.astype("float32")).reshape(8, 16)
    assert all(any(torch.equal(v, c) for c in codebook) for v in decoded.reshape(-1, 16))


def test_sequence_tasks_refuse_channels_last():
    with pytest.raises(ValueError, match="no channel maps"):
        TaskConfig(task="shakespeare", channels_last=True)


def test_run_config_key():
    assert RunSettings.from_run_config({"channels-last": True}).task.channels_last
    assert not RunSettings.from_run_config({}).task.channels_last
