"""`message_nbytes` equals the bytes of Flower's own serialization, for every message we send."""

from __future__ import annotations

import flwr.app.message.array as flwr_array
import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.supercore.inflatable.inflatable_object import (
    get_all_nested_objects,
    no_object_id_recompute,
)
from flwr.supercore.task_identity import TaskIdentity

import flwr_split.metrics.traffic as traffic
import flwr_split.wire.sizes as sizes
from flwr_split.codecs import get_codec, registered_codecs
from flwr_split.wire import message_nbytes
from flwr_split.wire.arrays import to_array
from tests.helpers import run_inprocess


def serialized_nbytes(message: Message) -> int:
    """Flower's way: deflate every distinct object of the message tree (hashing each)."""
    with no_object_id_recompute():
        return sum(len(obj.deflate()) for obj in get_all_nested_objects(message).values())


@pytest.fixture
def checked(monkeypatch):
    """Make every size the traffic log measures also checked against Flower's serialization."""
    seen: list[tuple[str, int, int]] = []

    def both(message: Message) -> int:
        ours = message_nbytes(message)
        seen.append((message.metadata.message_type, ours, serialized_nbytes(message)))
        return ours

    monkeypatch.setattr(traffic, "message_nbytes", both)
    return seen


@pytest.mark.parametrize("codec_id", registered_codecs())
def test_every_message_of_a_run_has_its_serialized_size(checked, codec_id):
    uplink = get_codec(codec_id)
    downlink = codec_id if uplink.accepts_negative else "identity"
    # 3 steps per epoch: steps, the epoch's FedAvg sync, evaluations, hello
    run_inprocess(3, uplink=codec_id, downlink=downlink, batch_size=160, eval_every=2, epochs=2)
    types = {message_type for message_type, _, _ in checked}
    assert {"query.sl_hello", "train.sl_step", "evaluate.sl_forward"} <= types
    assert all(ours == theirs for _, ours, theirs in checked), [
        row for row in checked if row[1] != row[2]
    ]


def test_every_step_sync_messages_have_their_serialized_size(checked):
    run_inprocess(2, sync="every_step", max_steps=3)
    assert len(checked) > 8
    assert all(ours == theirs for _, ours, theirs in checked)


@pytest.fixture
def task_identity():
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1


def _message(content: RecordDict) -> Message:
    return Message(content, dst_node_id=5, message_type="train.x")


EDGE_CASES = {
    "empty content": lambda: RecordDict(),
    "same array twice": lambda: RecordDict(
        {"a": ArrayRecord({"x": to_array(np.zeros(7, np.float32)), "y": Array(np.zeros(7))})}
    ),
    "equal records under two names": lambda: RecordDict(
        {
            "a": ArrayRecord({"x": to_array(np.arange(5, dtype=np.int64))}),
            "b": ArrayRecord({"x": to_array(np.arange(5, dtype=np.int64))}),
            "c": ConfigRecord({"k": 1, "s": "ü"}),
            "d": ConfigRecord({"k": 1, "s": "ü"}),
            "m": MetricRecord({"loss": 0.5}),
        }
    ),
    "equal bytes, other shape": lambda: RecordDict(
        {
            "a": ArrayRecord(
                {"x": to_array(np.ones(4, np.float32)), "y": to_array(np.ones(4, np.float32))}
            ),
            "b": ArrayRecord({"x": to_array(np.ones((2, 2), np.float32))}),
        }
    ),
    "every kind of config and metric value": lambda: RecordDict(
        {
            "c": ConfigRecord(
                {
                    "t": True,
                    "f": False,
                    "zero": 0,
                    "neg": -(2**40),
                    "big": 2**63 + 5,
                    "x": -0.0,
                    "nan": float("nan"),
                    "s": "",
                    "b": b"\x00" * 300,
                    "bl": [True, False],
                    "il": [1, -2, 2**62],
                    "ul": [1, 2**64 - 1],
                    "fl": [0.5, -1.0],
                    "sl": ["a", "ß" * 70],
                    "byl": [b"", b"xy"],
                    "empty": [],
                }
            ),
            "m": MetricRecord({"i": 2**63, "f": 1.5, "il": [3, 4], "fl": [], "ul": [2**64 - 1]}),
        }
    ),
    "records equal but for the order or a type": lambda: RecordDict(
        {
            "a": ConfigRecord({"x": 1, "y": 2}),
            "b": ConfigRecord({"y": 2, "x": 1}),
            "c": ConfigRecord({"x": True, "y": 2}),
            "d": ConfigRecord({"x": 1.0, "y": 2}),
            "e": ConfigRecord({"x": 0.0}),
            "f": ConfigRecord({"x": -0.0}),
            "g": ConfigRecord({"x": [1, 2]}),
            "h": ConfigRecord({"x": [1.0, 2.0]}),
            "i": MetricRecord({"x": 1, "y": 2}),
        }
    ),
    "empty arrays and odd names": lambda: RecordDict(
        {"é\n\"'": ArrayRecord({"": to_array(np.zeros((0, 3), np.uint8)), "z": Array(np.zeros(0))})}
    ),
}


@pytest.mark.usefixtures("task_identity")
@pytest.mark.parametrize("case", EDGE_CASES)
@pytest.mark.parametrize("chunk", [5 * 2**20, 16])
def test_edge_cases_have_their_serialized_size(monkeypatch, case, chunk):
    monkeypatch.setattr(flwr_array, "FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE", chunk)
    message = _message(EDGE_CASES[case]())
    assert message_nbytes(message) == serialized_nbytes(message)


@pytest.mark.usefixtures("task_identity")
@pytest.mark.parametrize("chunk", [5 * 2**20, 64, 7])
def test_chunked_arrays_with_repeated_chunks_have_their_serialized_size(monkeypatch, chunk):
    monkeypatch.setattr(flwr_array, "FLWR_PRIVATE_MAX_ARRAY_CHUNK_SIZE", chunk)
    rng = np.random.default_rng(0)
    zeros_then_noise = np.concatenate([np.zeros(200, np.float32), rng.random(50, np.float32)])
    content = RecordDict(
        {
            "a": ArrayRecord({"x": to_array(zeros_then_noise), "y": to_array(np.zeros(300))}),
            "b": ArrayRecord({"x": to_array(rng.random(100))}),
        }
    )
    message = _message(content)
    assert message_nbytes(message) == serialized_nbytes(message)


@pytest.mark.usefixtures("task_identity")
def test_error_replies_and_metadata_count():
    message = Message(Error(code=7, reason="bad " * 40), reply_to=_message(RecordDict()))
    assert message_nbytes(message) == serialized_nbytes(message)
    reply = Message(RecordDict({"a": ConfigRecord({"x": 1})}), reply_to=_message(RecordDict()))
    assert message_nbytes(reply) == serialized_nbytes(reply)


@pytest.mark.usefixtures("task_identity")
def test_data_is_never_hashed(monkeypatch):
    import hashlib

    def no_hashing(*_args):
        raise AssertionError("hashed")

    monkeypatch.setattr(hashlib, "sha256", no_hashing)
    content = RecordDict({"a": ArrayRecord({"x": to_array(np.ones(1000, np.float32))})})
    assert message_nbytes(_message(content)) > 4000


@pytest.mark.usefixtures("task_identity")
def test_a_constant_record_is_sized_once_and_the_same(monkeypatch):
    record = ConfigRecord({"task": "digits", "seed": 3, "lr": 0.1, "flags": [True, False]})
    message = _message(RecordDict({"sl.cfg": record, "other": ConfigRecord({"x": 1})}))
    expected = serialized_nbytes(message)
    assert sizes.constant_record(record) is record
    calls = []
    sizing = sizes.scalar_record_nbytes
    monkeypatch.setattr(sizes, "scalar_record_nbytes", lambda r: calls.append(r) or sizing(r))
    assert message_nbytes(message) == expected
    assert [r for r in calls if r is record] == [] and len(calls) == 1  # only "other"
