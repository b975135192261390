"""A client checks the server's config before acting on it: values out of range and tasks
that need a network the node does not have get an error reply, at once."""

from __future__ import annotations

import socket
import time
from dataclasses import replace

import pytest
from flwr.app import Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from flwr_split.client.app import app
from flwr_split.tasks import TaskConfig, get_task, register_task
from flwr_split.tasks import downloads as downloads_module
from flwr_split.tasks.data import shakespeare
from flwr_split.tasks.downloads import check_downloads
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.tasks.registry import TASKS
from flwr_split.wire import KEY_CONFIG, MSG_HELLO, SessionConfig


@pytest.fixture(autouse=True)
def task_identity():
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield


def hello(task: str = "digits", **fields: object) -> Message:
    record = SessionConfig(TaskConfig(task=task), "identity", "identity", OptimizerConfig())
    config = record.to_record()
    for key, value in fields.items():
        config[key] = value
    return Message(RecordDict({KEY_CONFIG: config}), dst_node_id=7, message_type=MSG_HELLO)


def context() -> Context:
    node_config = {"partition-id": 0, "num-partitions": 2}
    return Context(run_id=1, node_id=7, node_config=node_config, state=RecordDict(), run_config={})


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("dirichlet_alpha", float("nan"), "dirichlet_alpha must be finite and > 0"),
        ("dirichlet_alpha", float("inf"), "dirichlet_alpha must be finite and > 0"),
        ("dirichlet_alpha", 0.0, "dirichlet_alpha must be finite and > 0"),
        ("opt_lr", float("inf"), "lr must be finite and > 0"),
        ("opt_lr", float("nan"), "lr must be finite and > 0"),
        ("opt_momentum", float("nan"), "momentum must be in [0, 1)"),
        ("test_fraction", float("nan"), "test_fraction must be in (0, 1)"),
    ],
)
def test_a_non_finite_or_out_of_range_config_value_is_refused(field, value, reason):
    reply = app(hello(**{field: value}), context())
    assert reply.has_error() and reason in reply.error.reason


@pytest.fixture
def downloading_task(monkeypatch):
    """digits, declared to download from a loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    saved = dict(TASKS._entries)
    register_task(
        replace(get_task("digits"), name="far_digits", downloads=(f"127.0.0.1:{closed}",))
    )
    yield f"127.0.0.1:{closed}"
    TASKS._entries = saved


def test_a_task_whose_data_host_cannot_be_reached_gets_an_error_reply_at_once(downloading_task):
    started = time.perf_counter()
    reply = app(hello(task="far_digits"), context())
    assert time.perf_counter() - started < 2.0
    assert reply.has_error()
    assert f"downloads its data from {downloading_task}, which this node cannot reach" in (
        reply.error.reason
    )


def test_a_hanging_name_lookup_is_cut_short(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(5)
        raise OSError("resolved too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    monkeypatch.setattr(downloads_module, "PROBE_SECONDS", 0.3)
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"no connection within 0.3 s"):
        check_downloads("far", ("example.invalid:443",))
    assert time.perf_counter() - started < 1.0


def test_shakespeare_leaf_offline_is_refused_before_its_loader_runs(monkeypatch):
    def offline(address, timeout=None):
        raise OSError("Network is unreachable")

    def loader(*args, **kwargs):
        raise AssertionError("the loader must not run")

    monkeypatch.setattr(socket, "create_connection", offline)
    monkeypatch.setattr(shakespeare, "download_leaf", loader)
    shakespeare._leaf_split.cache_clear()
    reply = app(hello(task="shakespeare_leaf", partitioner="natural"), context())
    assert reply.has_error()
    assert "downloads its data from huggingface.co:443" in reply.error.reason
    assert "Network is unreachable" in reply.error.reason


def test_a_node_declared_offline_tries_no_connection(monkeypatch):
    def connect(*args, **kwargs):
        raise AssertionError("no connection may be tried")

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    check_downloads("shakespeare_leaf", (shakespeare.LEAF_HOST,))
