"""SL-shaped echo content: the records of a flwr-split step, built once, with no work behind them.

With ``payload = "sl"`` the echo App sends what an SL step sends (``sl.cfg``,
``sl.order``, an identity-coded cut-layer gradient and its metadata), its
ClientApp answers with what an SL client answers (activations, their
metadata, labels, ``sl.info``) and keeps what an SL client keeps in
``context.state`` (bottom weights, SGD momentum, metadata), all of the digits
task at the App's batch size. The records are made once per process by
flwr-split's own protocol functions, so an echo step costs Flower's transport
of SL-shaped messages and nothing else. `busy_compute` stands in for a client's
compute: torch work on one thread for a given time, with no SL behind it
(`with_compute`).
"""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
import torch
from flwr.app import ConfigRecord, RecordDict

from flwr_split.client.state import (
    STATE_META,
    STATE_OPTIM,
    STATE_WEIGHTS,
    optimizer_state_to_record,
)
from flwr_split.codecs import Encoded, get_codec
from flwr_split.tasks import TaskConfig, build_model, builtin_cut_shape, load_task_data
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.wire import (
    KEY_ACTS,
    KEY_CONFIG,
    KEY_GRAD,
    KEY_INFO,
    KEY_ORDER,
    SessionConfig,
    StepOrder,
    info_record,
    put_encoded,
    put_labels,
    weights_to_record,
)

TASK = TaskConfig()


@lru_cache(maxsize=4)
def step_content(batch: int) -> RecordDict:
    """Return the content of an SL step message: config, order and a gradient for ``batch``."""
    session = SessionConfig(TASK, "identity", "identity", OptimizerConfig())
    order = StepOrder(step=1, fwd_count=batch, bwd_count=batch)
    content = RecordDict({KEY_CONFIG: session.to_record(), KEY_ORDER: order.to_record()})
    put_encoded(content, KEY_GRAD, _encoded_cut_tensor(batch))
    return content


@lru_cache(maxsize=4)
def reply_content(batch: int) -> RecordDict:
    """Return the content of an SL step reply: activations, labels and ``sl.info``."""
    content = RecordDict()
    put_encoded(content, KEY_ACTS, _encoded_cut_tensor(batch))
    put_labels(content, np.zeros(batch, np.int64), TASK.definition.num_classes)
    content[KEY_INFO] = info_record(partition_id=0, compute_s=0.0)
    return content


@lru_cache(maxsize=1)
def state_records() -> dict[str, object]:
    """Return what an SL client keeps in ``context.state`` after a step (weights, momentum)."""
    bottom, _ = build_model(TASK)
    optimizer = OptimizerConfig().build(bottom.parameters())
    for param in bottom.parameters():
        param.grad = torch.zeros_like(param)
    optimizer.step()
    meta = {"version": 0, "token": "0" * 32, "seq": 0, "last_forward": [0, 0, 2, 0]}
    return {
        STATE_WEIGHTS: weights_to_record(bottom),
        STATE_META: ConfigRecord(meta),
        STATE_OPTIM: optimizer_state_to_record(optimizer),
    }


def with_compute(content: RecordDict, seconds: float) -> RecordDict:
    """Return a copy of ``content`` after `busy_compute` for ``seconds``, its time in ``sl.info``.

    ``sl.info`` holds ``compute_s``, as an SL client's reply does.
    """
    content = RecordDict(dict(content))
    content[KEY_INFO] = info_record(partition_id=0, compute_s=busy_compute(seconds))
    return content


def busy_compute(seconds: float) -> float:
    """Train the digits bottom on two training samples, on one thread, for ``seconds``.

    The work of an SL client without SL: forward, backward and an optimizer step
    of the same bottom model (one thread, as the SL App's ``client-threads``),
    repeated while a whole step still fits in ``seconds``; the rest is spent
    spinning on the clock, so the busy time is ``seconds`` and not up to a step
    more (steps took about 0.7 ms more than asked on average under Ray before).
    Returns the seconds spent, at least ``seconds``.
    """
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    bottom, optimizer, inputs = _busy_model()
    started = time.perf_counter()
    deadline, last_step = started + seconds, 0.0
    while (now := time.perf_counter()) + last_step < deadline:
        optimizer.zero_grad()
        bottom(inputs).square().mean().backward()
        optimizer.step()
        last_step = time.perf_counter() - now
    while time.perf_counter() < deadline:
        pass
    return time.perf_counter() - started


@lru_cache(maxsize=1)
def _busy_model() -> tuple[torch.nn.Module, torch.optim.Optimizer, torch.Tensor]:
    """Return the digits bottom, its optimizer and two training samples of the task."""
    bottom, _ = build_model(TASK)
    train, _ = load_task_data(TASK)
    return bottom, OptimizerConfig().build(bottom.parameters()), torch.from_numpy(train.x[:2])


def _encoded_cut_tensor(batch: int) -> Encoded:
    return get_codec("identity").encode(torch.zeros((batch, *builtin_cut_shape(TASK))))
