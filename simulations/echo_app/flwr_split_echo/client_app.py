"""Echo ClientApp: answers every message without work, empty or SL-shaped (``payload``)."""

from __future__ import annotations

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.query("echo_hello")
def hello(message: Message, _context: Context) -> Message:
    """Reply with empty content (the warm-up round, like ``query.sl_hello``)."""
    return Message(RecordDict(), reply_to=message)


@app.train("echo_step")
def step(message: Message, context: Context) -> Message:
    """Reply to a step: empty, or (``payload = "sl"``) as an SL client would, keeping its state.

    With ``busy`` > 0 (seconds) an SL-shaped reply first computes that long and
    reports the time in ``sl.info`` as ``compute_s``, as an SL client reports
    its compute (`flwr_split_echo.shaped.busy_reply_content`).
    """
    if context.run_config.get("payload", "empty") != "sl":
        return Message(RecordDict(), reply_to=message)
    # Imported here: flwr_split (and torch) stay out of the empty echo's processes.
    from flwr_split_echo.shaped import busy_reply_content, reply_content, state_records

    busy = float(context.run_config.get("busy", 0.0))
    for key, record in state_records().items():
        context.state[key] = record
    batch = int(context.run_config["batch-size"])
    content = busy_reply_content(batch, busy) if busy > 0 else reply_content(batch)
    return Message(content, reply_to=message)
