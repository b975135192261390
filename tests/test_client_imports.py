"""The ClientApp path imports only what a step needs (a SuperNode pays it on every message).

Each message to a deployment SuperNode starts a fresh ClientApp process, so every
module the ClientApp imports is paid per step. These tests run the ClientApp in a
fresh interpreter, as a SuperNode does: importing it, and then serving a hello and
two SL steps of the default task, must not pull in the data-science stack.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = (
    "sklearn",
    "datasets",
    "flwr_datasets",
    "pandas",
    "matplotlib",
    "scipy",
    "pyarrow",
    "torch._dynamo",
    "sympy",
)
"""Packages a training step of a built-in offline task never needs (``torch._dynamo``:
imported by any method of a ``torch.optim.Optimizer``, see `flwr_split.tasks.lean_optim`;
``sympy``: by ``tensor.backward(gradient)``, see `ClientSession.backward`)."""

SERVE = """
import json, sys
from flwr.app import Context, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity
import flwr_split.client.app
loaded = {"import": sorted(m for m in HEAVY if m in sys.modules)}
from flwr_split.codecs import get_codec
from flwr_split.tasks import TaskConfig, build_model
from flwr_split.tasks.optim import OptimizerConfig
from flwr_split.wire import (
    KEY_BOTTOM, KEY_CONFIG, KEY_GRAD, KEY_ORDER, MSG_HELLO, MSG_STEP, SessionConfig, StepOrder,
    put_encoded, weights_to_record,
)
import torch

TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 7, 1
app = flwr_split.client.app.app
config = SessionConfig(TaskConfig(), "identity", "identity", OptimizerConfig())
context = Context(1, 7, {"partition-id": 0, "num-partitions": 3}, RecordDict(), {})

def send(message_type, order, content=None):
    content = content or RecordDict()
    content[KEY_CONFIG] = config.to_record()
    if order is not None:  # a hello holds the config alone, as the server sends it
        content[KEY_ORDER] = order.to_record()
    reply = app(Message(content, dst_node_id=7, message_type=message_type), context)
    assert not reply.has_error(), reply.error.reason

send(MSG_HELLO, None)
weights = weights_to_record(build_model(TaskConfig())[0])
send(MSG_STEP, StepOrder(step=0, fwd_count=4), RecordDict({KEY_BOTTOM: weights}))
grad = RecordDict()
put_encoded(grad, KEY_GRAD, get_codec("identity").encode(torch.ones(4, 16, 8, 8)))
send(MSG_STEP, StepOrder(step=1, fwd_offset=4, fwd_count=4, bwd_count=4), grad)
loaded["step"] = sorted(m for m in HEAVY if m in sys.modules)
print(json.dumps(loaded))
"""


def _fresh_python(code: str, data_dir: Path) -> str:
    env = {
        **os.environ,
        "FLWR_SPLIT_DATA_DIR": str(data_dir),
        "FLWR_SPLIT_CLIENT_CACHE": "0",  # a SuperNode's ClientApp process rebuilds everything
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_clientapp_import_and_steps_leave_the_data_science_stack_unloaded(tmp_path):
    # the first load on a host makes the digits split (with scikit-learn) and caches it
    _fresh_python(
        "from flwr_split.tasks.data.digits import load_digits_split\nload_digits_split()\n"
        "print('warm')",
        tmp_path,
    )
    loaded = json.loads(_fresh_python(SERVE, tmp_path))
    assert loaded == {"import": [], "step": []}


@pytest.mark.slow
def test_the_check_sees_a_heavy_import(tmp_path):
    code = "import flwr_split.client.app, pandas, sys\n"
    code += "print([m for m in HEAVY if m in sys.modules])"
    assert "pandas" in _fresh_python(code, tmp_path)
