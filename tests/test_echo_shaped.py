"""The SL-shaped echo content has the layout of a real SL step (records, arrays, state)."""

from __future__ import annotations

import sys

import numpy as np
from flwr.app import ArrayRecord, Context, Message, RecordDict

from flwr_split.client.app import app as client_app
from flwr_split.tasks import TaskConfig
from flwr_split.testing.inprocess import InProcessGrid
from simulations.common import ECHO_APP
from strategies.parallel import ParallelSplitLearning

sys.path.insert(0, str(ECHO_APP))
from flwr_split_echo.shaped import (  # noqa: E402
    reply_content,
    state_records,
    step_content,
    with_compute,
)

BATCH = 2


def _layout(records) -> dict[str, object]:
    """Record type per key and, for ArrayRecords, each array's dtype and shape."""
    return {
        key: (
            {name: (array.dtype, tuple(array.shape)) for name, array in record.items()}
            if isinstance(record, ArrayRecord)
            else type(record).__name__
        )
        for key, record in records.items()
    }


def test_shaped_echo_records_match_a_real_sl_step():
    captured: list[tuple[Message, Message, dict[str, object]]] = []

    def capturing(message: Message, context: Context) -> Message:
        reply = client_app(message, context)
        both_ways = "sl.grad" in message.content and "sl.acts" in reply.content
        if both_ways and "sl.bottom" not in message.content:  # a step, not a weight sync
            captured.append((message, reply, _layout(context.state)))  # the state changes later
        return reply

    strategy = ParallelSplitLearning(
        TaskConfig(), batch_size=BATCH, eval_every=10**9, min_available_nodes=2
    )
    strategy.start(InProcessGrid(capturing, 2), num_epochs=1, max_steps=3)
    message, reply, state_layout = captured[-1]
    assert _layout(step_content(BATCH)) == _layout(message.content)
    assert _layout(reply_content(BATCH)) == _layout(reply.content)
    assert _layout(state_records()) == state_layout
    assert set(step_content(BATCH)["sl.cfg"].keys()) == set(message.content["sl.cfg"].keys())
    assert np.isfinite(float(reply_content(BATCH)["sl.info"]["compute_s"]))


def test_with_compute_keeps_the_layout_and_reports_at_least_the_asked_compute():
    reply = with_compute(reply_content(BATCH), 0.003)
    assert _layout(reply) == _layout(reply_content(BATCH))
    assert 0.003 <= float(reply["sl.info"]["compute_s"]) < 1.0
    assert float(reply_content(BATCH)["sl.info"]["compute_s"]) == 0.0  # the cached one is untouched
    assert list(with_compute(RecordDict(), 0.001).keys()) == ["sl.info"]
