"""Gradient correction G + λ(Z − Z̃): the spec's F5-F8 and the client's backward."""

from __future__ import annotations

import pytest
import torch
from flwr.app import ConfigRecord, RecordDict

from flwr_split.client.app import app
from flwr_split.client.correction import QuantizationResidual
from flwr_split.client.session_cache import SESSION_CACHE
from flwr_split.codecs import CodecContext, get_codec
from flwr_split.options import RunSettings
from flwr_split.tasks import TaskConfig, build_model, client_data
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.wire import (
    KEY_ACTS,
    KEY_BOTTOM,
    KEY_BOTTOM_GRAD,
    KEY_GRAD,
    ProtocolError,
    SessionConfig,
    StepOrder,
    batch_indices,
    get_encoded,
    put_encoded,
    weights_to_record,
)
from tests.helpers import run_inprocess
from tests.test_client import context, step_message, task_identity  # noqa: F401

UPLINK = "fedlite:q=64,clusters=4"


def _residual(x: torch.Tensor, spec: str = "fedlite:q=8,clusters=3") -> QuantizationResidual:
    return QuantizationResidual.recompute(get_codec(spec), x, CodecContext(1))


def test_f7_correction_with_lambda_a_is_exact_on_an_isotropic_quadratic():
    a = 0.7
    z = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))
    c = torch.randn(16, 32, generator=torch.Generator().manual_seed(1))
    residual = _residual(z)
    z_tilde = z - residual.residual
    assert not torch.allclose(z_tilde, z)
    corrected = residual.correct(a * (z_tilde - c), a)
    assert torch.allclose(corrected, a * (z - c), atol=1e-5)


def test_f8_some_positive_lambda_reduces_the_gradient_bias_of_a_softmax_head():
    gen = torch.Generator().manual_seed(3)
    z = torch.relu(torch.randn(32, 64, generator=gen))
    head = torch.nn.Linear(64, 10)
    labels = torch.randint(10, (32,), generator=gen)

    def grad_at(acts: torch.Tensor) -> torch.Tensor:
        acts = acts.clone().requires_grad_(True)
        torch.nn.functional.cross_entropy(head(acts), labels).backward()
        return acts.grad

    residual = _residual(z, "fedlite:q=16,clusters=8,groups=2")
    true, served = grad_at(z), grad_at(z - residual.residual)
    errors = {
        lam: float((residual.correct(served, lam) - true).square().sum())
        for lam in (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    }
    best = min(errors, key=errors.get)
    assert best > 0 and errors[best] < errors[0.0]


def test_f5_lossless_codec_has_zero_residual():
    z = torch.randn(4, 12)
    assert torch.equal(_residual(z, "fedlite:q=3,clusters=12").residual, torch.zeros(4, 12))


def test_zero_weight_returns_the_server_gradient_itself():
    grad = torch.randn(4, 12)
    assert _residual(torch.randn(4, 12)).correct(grad, 0.0) is grad


def _bottom_grads(correction: float, cached: bool, monkeypatch) -> tuple[dict, dict]:
    """Forward then backward (``return`` mode) through the ClientApp; also the expected grads."""
    monkeypatch.setattr(SESSION_CACHE, "enabled", cached)
    cfg = SessionConfig(TaskConfig(), UPLINK, "identity", OptimizerConfig(), correction)
    ctx = context()
    forward = step_message(StepOrder(step=3, fwd_count=6), cfg)
    bottom, _ = build_model(TaskConfig())
    forward.content[KEY_BOTTOM] = weights_to_record(bottom)
    reply = app(forward, ctx)
    assert not reply.has_error()
    z_tilde = get_codec(UPLINK).decode(get_encoded(reply.content, KEY_ACTS))
    grad = torch.randn(z_tilde.shape, generator=torch.Generator().manual_seed(0))
    records = RecordDict()
    put_encoded(records, KEY_GRAD, get_codec("identity").encode(grad))
    backward = step_message(
        StepOrder(step=4, bwd_count=6, bwd_mode="return"), cfg, **dict(records.items())
    )
    reply = app(backward, ctx)
    assert not reply.has_error(), reply.error.reason if reply.has_error() else ""
    got = {k: torch.from_numpy(v.numpy()) for k, v in reply.content[KEY_BOTTOM_GRAD].items()}
    train, _ = client_data(TaskConfig(), 0, 2)
    inputs = torch.from_numpy(train.x[batch_indices(0, 0, 0, len(train), 0, 6)])
    z = bottom(inputs)
    z.backward(grad + correction * (z.detach() - z_tilde))
    expected = {name: p.grad for name, p in bottom.named_parameters()}
    return got, expected


@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("correction", [0.0, 0.05])
def test_f6_client_back_propagates_the_corrected_gradient(correction, cached, monkeypatch):
    got, expected = _bottom_grads(correction, cached, monkeypatch)
    for name, value in expected.items():
        torch.testing.assert_close(got[name], value)


def test_correction_changes_the_bottom_gradient(monkeypatch):
    plain, _ = _bottom_grads(0.0, True, monkeypatch)
    corrected, _ = _bottom_grads(0.05, True, monkeypatch)
    assert not torch.equal(plain["0.0.weight"], corrected["0.0.weight"])


def test_backward_of_a_slice_that_was_not_the_last_forward_is_rejected():
    cfg = SessionConfig(TaskConfig(), UPLINK, "identity", OptimizerConfig(), 0.1)
    ctx = context()
    forward = step_message(StepOrder(step=0, fwd_count=4), cfg)
    forward.content[KEY_BOTTOM] = weights_to_record(build_model(TaskConfig())[0])
    assert not app(forward, ctx).has_error()
    records = RecordDict()
    put_encoded(records, KEY_GRAD, get_codec("identity").encode(torch.zeros(4, 16, 8, 8)))
    other = step_message(StepOrder(step=1, bwd_offset=4, bwd_count=4), cfg, **dict(records.items()))
    reply = app(other, ctx)
    assert reply.has_error() and "last training forward" in reply.error.reason


def test_training_with_a_lossless_uplink_ignores_the_correction():
    _, plain, _ = run_inprocess(uplink="identity", max_steps=3)
    _, corrected, _ = run_inprocess(uplink="identity", correction=0.5, max_steps=3)
    assert plain.history["accuracy"].tolist() == corrected.history["accuracy"].tolist()
    assert plain.history["loss"].tolist() == corrected.history["loss"].tolist()


def test_fedlite_training_with_correction_runs_and_is_deterministic():
    runs = [run_inprocess(uplink=UPLINK, correction=1e-2, max_steps=3)[1] for _ in range(2)]
    assert not runs[0].rejected
    assert runs[0].history["loss"].tolist() == runs[1].history["loss"].tolist()


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_correction_weight_is_rejected(bad):
    record = SessionConfig(TaskConfig(), UPLINK, "identity", OptimizerConfig()).to_record()
    record["correction"] = bad
    with pytest.raises(ProtocolError, match="correction"):
        SessionConfig.from_record(ConfigRecord(dict(record.items())))


def test_correction_travels_in_the_session_record_and_the_run_config():
    cfg = SessionConfig(TaskConfig(), UPLINK, "identity", OptimizerConfig(), 1e-3)
    assert SessionConfig.from_record(cfg.to_record()) == cfg
    settings = RunSettings.from_run_config({"correction": 1e-3, "uplink": UPLINK})
    assert settings.strategy["correction"] == 1e-3
    assert RunSettings.from_run_config({}).strategy["correction"] == 0.0
