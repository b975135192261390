"""Replies pulled from a SuperLink's object store within a byte budget (`pull_replies`)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.app.message import remove_content_from_message
from flwr.common.serde import message_to_proto
from flwr.proto.message_pb2 import ObjectTree, PullObjectResponse  # pylint: disable=E0611
from flwr.proto.node_pb2 import Node  # pylint: disable=E0611
from flwr.proto.runtime_pb2 import PullAppMessagesResponse  # pylint: disable=E0611
from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects, get_object_tree
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from flwr_split.server.nodes import exchange
from flwr_split.server.pull import ERROR_CODE_REPLY_TOO_LARGE, pull_replies
from flwr_split.testing import InProcessGrid
from flwr_split.wire import MSG_STEP
from flwr_split.wire.arrays import to_array

CHUNK = 5 * 2**20
"""Flower's array chunk size."""


@pytest.fixture(autouse=True)
def task_identity():
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield


def with_id(message: Message) -> Message:
    message.metadata.__dict__["_message_id"] = message.object_id  # as a push sets it
    return message


class Store:
    """A SuperLink's runtime API over replies held as Flower objects."""

    def __init__(self, replies: list[Message]) -> None:
        self.replies = replies
        self.contents = {
            object_id: obj.deflate()
            for reply in replies
            for object_id, obj in get_all_nested_objects(reply).items()
        }
        self.pulled: list[int] = []
        self.confirmed: list[str] = []

    def PullMessages(self, request) -> PullAppMessagesResponse:  # noqa: N802 - Flower's name
        trees: list[ObjectTree] = [get_object_tree(r) for r in self.replies]
        protos = [message_to_proto(remove_content_from_message(r)) for r in self.replies]
        return PullAppMessagesResponse(messages_list=protos, message_object_trees=trees)

    def PullObject(self, request) -> PullObjectResponse:  # noqa: N802
        content = self.contents[request.object_id]
        self.pulled.append(len(content))
        return PullObjectResponse(object_found=True, object_available=True, object_content=content)

    def ConfirmMessageReceived(self, request) -> None:  # noqa: N802
        self.confirmed.append(request.message_object_id)


class StoreGrid(InProcessGrid):
    """A grid whose replies come from a `Store`, as `HttpGrid`'s do from the SuperLink."""

    def __init__(self, store: Store) -> None:
        super().__init__(lambda message, context: message, 1)
        self._runtime_client = store
        self.node = Node(node_id=1)
        self.set_run(Run.create_empty(run_id=1))


def request_and_reply(size: int) -> tuple[Message, Message]:
    sent = with_id(Message(RecordDict({"c": ConfigRecord({"a": 1})}), 7, MSG_STEP))
    content = RecordDict({"x": ArrayRecord({"x": to_array(np.ones(size, np.uint8))})})
    return sent, with_id(Message(content, reply_to=sent))


def test_a_reply_within_its_budget_arrives_whole_and_is_confirmed():
    sent, reply = request_and_reply(3 * CHUNK)
    store = Store([reply])
    got = pull_replies(StoreGrid(store), {sent.metadata.message_id: sent}, {})  # default cap
    arrived = got[sent.metadata.message_id]
    assert not arrived.has_error()
    assert np.array_equal(arrived.content["x"]["x"].numpy(), np.ones(3 * CHUNK, np.uint8))
    assert store.confirmed == [reply.metadata.message_id]


def test_a_reply_over_its_budget_becomes_an_error_reply_after_little_more_than_the_budget():
    sent, reply = request_and_reply(20 * CHUNK)  # 100 MiB in 20 chunks
    store = Store([reply])
    mid = sent.metadata.message_id
    got = pull_replies(StoreGrid(store), {mid: sent}, {mid: 2**20})
    assert got[mid].has_error() and got[mid].error.code == ERROR_CODE_REPLY_TOO_LARGE
    assert "the reply exceeds 1048576 bytes" in got[mid].error.reason
    assert got[mid].metadata.reply_to_message_id == mid
    assert sum(store.pulled) <= 3 * CHUNK  # at most one chunk per concurrent pull, then stop
    assert store.confirmed == [reply.metadata.message_id]  # the SuperLink may drop it


def test_exchange_passes_each_message_its_budget():
    sent, reply = request_and_reply(2 * CHUNK)
    store = Store([reply])
    grid = StoreGrid(store)
    grid.push_messages = lambda messages: [m.metadata.message_id for m in messages]
    replies = exchange(grid, [sent], timeout=5.0, budgets=[CHUNK])
    assert replies[7].has_error() and "exceeds 5242880 bytes" in replies[7].error.reason
