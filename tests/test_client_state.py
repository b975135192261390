"""A client writes back to ``context.state`` only the tensors that changed."""

from __future__ import annotations

import pytest
import torch
from flwr.app import Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from flwr_split.client.app import app
from flwr_split.client.session_cache import SESSION_CACHE
from flwr_split.client.state import STATE_OPTIM, STATE_WEIGHTS, TensorRecord
from flwr_split.codecs import get_codec
from flwr_split.tasks import TaskConfig, build_model
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.wire import (
    KEY_BOTTOM,
    KEY_CONFIG,
    KEY_GRAD,
    KEY_ORDER,
    MSG_EVAL,
    MSG_STEP,
    SessionConfig,
    StepOrder,
    put_encoded,
    weights_to_record,
)
from flwr_split.wire.arrays import from_array


def test_only_changed_tensors_are_serialized_again():
    a, b = torch.zeros(3), torch.ones(2)
    saved = TensorRecord()
    first = saved.write({"a": a, "b": b})
    assert saved.write({"a": a, "b": b}) is first  # nothing changed: the same record
    b.add_(1.0)  # in place: its version moves
    second = saved.write({"a": a, "b": b})
    assert second is not first and second["a"] is first["a"] and second["b"] is not first["b"]
    assert from_array(second["b"]).tolist() == [2.0, 2.0]
    fresh = torch.ones(2)  # a new tensor of the same name (an optimizer restarted)
    assert saved.write({"a": a, "b": fresh})["b"] is not second["b"]
    assert list(saved.write({"a": a})) == ["a"]


def test_adopted_record_is_kept_until_a_tensor_changes():
    a = torch.arange(4.0)
    record = TensorRecord().write({"a": a})
    saved = TensorRecord()
    saved.adopt(record, {"a": a})
    assert saved.write({"a": a}) is record
    a.mul_(2)
    assert from_array(saved.write({"a": a})["a"]).tolist() == [0.0, 2.0, 4.0, 6.0]


def _send(context: Context, message_type: str, order: StepOrder, content: RecordDict) -> None:
    config = SessionConfig(TaskConfig(), "identity", "identity", OptimizerConfig())
    content[KEY_CONFIG], content[KEY_ORDER] = config.to_record(), order.to_record()
    reply = app(Message(content, dst_node_id=7, message_type=message_type), context)
    assert not reply.has_error(), reply.error.reason


@pytest.mark.parametrize("cached", [True, False])
def test_a_step_rewrites_the_state_and_an_evaluation_does_not(monkeypatch, cached):
    monkeypatch.setattr(SESSION_CACHE, "enabled", cached)  # off: every message rebuilds
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 7, 1
    context = Context(1, 7, {"partition-id": 0, "num-partitions": 4}, RecordDict(), {})
    weights = weights_to_record(build_model(TaskConfig())[0])
    _send(context, MSG_STEP, StepOrder(step=0, fwd_count=4), RecordDict({KEY_BOTTOM: weights}))
    grad = RecordDict()
    put_encoded(grad, KEY_GRAD, get_codec("identity").encode(torch.ones(4, 16, 8, 8)))
    _send(context, MSG_STEP, StepOrder(step=1, bwd_count=4), grad)
    stored = {key: context.state[key] for key in (STATE_WEIGHTS, STATE_OPTIM)}
    assert from_array(stored[STATE_OPTIM]["0.momentum_buffer"]).any()  # the step moved them
    assert not (
        from_array(stored[STATE_WEIGHTS]["0.0.weight"]) == from_array(weights["0.0.weight"])
    ).all()
    _send(context, MSG_EVAL, StepOrder(step=2), RecordDict())
    assert all(context.state[key] is record for key, record in stored.items())
