"""Client handlers validate what the server sends and answer with a reasoned error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from hypothesis import given, settings
from hypothesis import strategies as st

from flwr_split.client.app import app
from flwr_split.codecs import get_codec
from flwr_split.tasks import TaskConfig, build_model
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.wire import (
    ERROR_CODE_BAD_MESSAGE,
    ERROR_CODE_STALE_WEIGHTS,
    KEY_ACTS,
    KEY_BOTTOM,
    KEY_CONFIG,
    KEY_GRAD,
    KEY_ORDER,
    MSG_HELLO,
    MSG_STEP,
    SessionConfig,
    StepOrder,
    batch_indices,
    get_encoded,
    put_encoded,
    weights_to_record,
)
from tests.helpers import flip_bytes


@pytest.fixture(autouse=True)
def task_identity():
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield


def context(partition_id: int = 0, num_partitions: int = 2) -> Context:
    node_config = {"partition-id": partition_id, "num-partitions": num_partitions}
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})


def session(uplink: str = "identity") -> SessionConfig:
    return SessionConfig(TaskConfig(), uplink, "identity", OptimizerConfig())


def step_message(order: StepOrder, cfg: SessionConfig | None = None, **records) -> Message:
    content = RecordDict({KEY_CONFIG: (cfg or session()).to_record(), KEY_ORDER: order.to_record()})
    for key, record in records.items():
        content[key] = record
    return Message(content, dst_node_id=7, message_type=MSG_STEP)


def with_weights(order: StepOrder) -> Message:
    message = step_message(order)
    message.content[KEY_BOTTOM] = weights_to_record(build_model(TaskConfig())[0])
    return message


def test_forward_reply_holds_encoded_activations_of_the_slice():
    reply = app(with_weights(StepOrder(step=0, fwd_count=5)), context())
    assert not reply.has_error()
    acts = get_codec("identity").decode(get_encoded(reply.content, KEY_ACTS))
    assert acts.shape == (5, 16, 8, 8)


def test_missing_order_is_rejected_with_its_name():
    message = step_message(StepOrder(step=0, fwd_count=5))
    del message.content[KEY_ORDER]
    reply = app(message, context())
    assert reply.has_error() and reply.error.code == ERROR_CODE_BAD_MESSAGE
    assert "no 'sl.order' record" in reply.error.reason


def test_unknown_codec_in_session_config_is_rejected():
    message = step_message(StepOrder(step=0, fwd_count=5), cfg=session(uplink="zip"))
    reply = app(message, context())
    assert reply.has_error() and "unknown codec 'zip'" in reply.error.reason


def test_order_for_weights_the_client_lacks_is_stale():
    reply = app(step_message(StepOrder(step=0, version=3, fwd_count=5)), context())
    assert reply.has_error() and reply.error.code == ERROR_CODE_STALE_WEIGHTS


def test_slice_beyond_the_clients_data_is_rejected():
    reply = app(with_weights(StepOrder(step=0, fwd_offset=1000, fwd_count=10)), context())
    assert reply.has_error() and "exceeds the client's" in reply.error.reason


def test_truncated_gradient_is_rejected_and_state_is_unchanged():
    ctx = context()
    assert not app(with_weights(StepOrder(step=0, fwd_count=4)), ctx).has_error()
    before = {k: v.numpy().copy() for k, v in ctx.state["sl.bottom"].items()}
    grad = RecordDict()
    put_encoded(grad, KEY_GRAD, get_codec("identity").encode(torch.zeros(4, 16, 8, 8)))
    grad[KEY_GRAD] = ArrayRecord({"values": Array(grad[KEY_GRAD]["values"].numpy()[:100].copy())})
    message = step_message(StepOrder(step=1, bwd_count=4), **dict(grad.items()))
    reply = app(message, ctx)
    assert reply.has_error() and "cut-layer gradient" in reply.error.reason
    after = {k: v.numpy() for k, v in ctx.state["sl.bottom"].items()}
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_node_without_partition_config_gets_a_hint():
    ctx = Context(run_id=1, node_id=7, node_config={}, state=RecordDict(), run_config={})
    reply = app(with_weights(StepOrder(step=0, fwd_count=4)), ctx)
    assert reply.has_error() and "--node-config" in reply.error.reason


def test_bad_field_type_in_order_is_rejected():
    message = with_weights(StepOrder(step=0, fwd_count=4))
    record = message.content[KEY_ORDER]
    record["fwd_count"] = "four"
    reply = app(message, context())
    assert reply.has_error() and "fwd_count" in reply.error.reason


def test_batches_are_a_pure_function_of_seed_epoch_and_client():
    a = batch_indices(0, 2, 5, 100, 10, 20)
    assert np.array_equal(a, batch_indices(0, 2, 5, 100, 10, 20))
    assert not np.array_equal(a, batch_indices(0, 3, 5, 100, 10, 20))
    epoch = np.concatenate([batch_indices(0, 2, 5, 100, o, 25) for o in range(0, 100, 25)])
    assert sorted(epoch) == list(range(100))


@pytest.mark.parametrize("field", ["step", "version", "fwd_count", "bwd_offset"])
def test_negative_order_field_is_rejected(field):
    message = with_weights(StepOrder(step=0, fwd_count=4))
    message.content[KEY_ORDER][field] = -1
    reply = app(message, context())
    assert reply.has_error() and f"sl.order.{field} must be >= 0" in reply.error.reason


@pytest.fixture
def restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("restore_torch_threads")
@pytest.mark.parametrize("threads", [1, 2])
def test_client_threads_from_the_run_config_set_torch_threads(threads):
    torch.set_num_threads(3)
    ctx = context()
    ctx.run_config["client-threads"] = threads
    assert not app(with_weights(StepOrder(step=0, fwd_count=4)), ctx).has_error()
    assert torch.get_num_threads() == threads


@pytest.mark.usefixtures("restore_torch_threads")
@pytest.mark.parametrize("threads", [-1, 1.5, "2", True])
def test_bad_client_threads_are_rejected(threads):
    ctx = context()
    ctx.run_config["client-threads"] = threads
    reply = app(with_weights(StepOrder(step=0, fwd_count=4)), ctx)
    assert reply.has_error() and "'client-threads' must be an int >= 0" in reply.error.reason


@pytest.mark.usefixtures("restore_torch_threads")
@pytest.mark.parametrize("run_config", [{}, {"client-threads": 0}])
def test_no_client_threads_leave_torch_alone(run_config):
    torch.set_num_threads(3)
    ctx = context()
    ctx.run_config.update(run_config)
    assert not app(with_weights(StepOrder(step=0, fwd_count=4)), ctx).has_error()
    assert torch.get_num_threads() == 3


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_flipped_bytes_in_the_gradient_get_a_reply_never_an_exception(seed):
    """The gradient the server sends is untrusted too: whatever its bytes, the client answers
    (a reasoned error or a reply), and any activations it sends afterwards are finite."""
    rng = np.random.default_rng(seed)
    ctx = context()
    assert not app(with_weights(StepOrder(step=0, fwd_count=4)), ctx).has_error()
    grad = RecordDict()
    put_encoded(grad, KEY_GRAD, get_codec("identity").encode(torch.randn(4, 16, 8, 8) * 1e-3))
    values = flip_bytes(grad[KEY_GRAD]["values"].numpy(), rng)
    grad[KEY_GRAD] = ArrayRecord({"values": Array(values)})
    order = StepOrder(step=1, bwd_count=4, fwd_offset=4, fwd_count=4)
    for message in (
        step_message(order, **dict(grad.items())),
        step_message(StepOrder(step=2, fwd_offset=8, fwd_count=4)),
    ):
        reply = app(message, ctx)
        if not reply.has_error():
            acts = get_codec("identity").decode(get_encoded(reply.content, KEY_ACTS))
            assert torch.isfinite(acts).all()


@pytest.mark.parametrize(
    "extra",
    [
        ArrayRecord({"x": Array(np.zeros(4, np.uint8))}),
        ConfigRecord({"json": "x"}),
        MetricRecord({"x": 1.0}),
    ],
)
@pytest.mark.parametrize("bwd_count", [0, 4])
def test_records_the_order_does_not_call_for_are_refused(extra, bwd_count):
    order = StepOrder(step=1, fwd_count=4, bwd_count=bwd_count)
    message = with_weights(order)
    message.content["sl.extra"] = extra
    reply = app(message, context())
    assert reply.has_error() and reply.error.code == ERROR_CODE_BAD_MESSAGE
    assert "unexpected records ['sl.extra']" in reply.error.reason


def test_a_gradient_without_a_backward_is_refused():
    grad = RecordDict()
    put_encoded(grad, KEY_GRAD, get_codec("identity").encode(torch.zeros(4, 16, 8, 8)))
    message = with_weights(StepOrder(step=0, fwd_count=4))
    for key, record in grad.items():
        message.content[key] = record
    reply = app(message, context())
    assert (
        reply.has_error() and "unexpected records ['sl.grad', 'sl.grad.meta']" in reply.error.reason
    )


def test_a_hello_with_records_beside_the_config_is_refused():
    content = RecordDict({KEY_CONFIG: session().to_record(), "sl.extra": ConfigRecord({"a": 1})})
    reply = app(Message(content, dst_node_id=7, message_type=MSG_HELLO), context())
    assert reply.has_error() and "unexpected records ['sl.extra']" in reply.error.reason
