"""Echo ClientApp: answers every message, empty or SL-shaped (``payload``), after ``busy`` work."""

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

    With ``busy`` > 0 (seconds) the reply is sent after computing that long and
    reports the time in ``sl.info`` as ``compute_s``, as an SL client reports
    its compute (`flwr_split_echo.shaped.with_compute`). With ``import-torch``
    the handler imports torch first: in deployment every message starts a
    fresh ClientApp process, so this is the floor of a ClientApp that computes
    with torch.
    """
    if context.run_config.get("import-torch", False):
        import torch  # noqa: F401

    shaped = context.run_config.get("payload", "empty") == "sl"
    busy = float(context.run_config.get("busy", 0.0))
    if not shaped and busy <= 0:
        return Message(RecordDict(), reply_to=message)
    # Imported here: flwr_split (and torch) stay out of the empty echo's processes.
    from flwr_split_echo.shaped import reply_content, state_records, with_compute

    content = RecordDict()
    if shaped:
        for key, record in state_records().items():
            context.state[key] = record
        content = reply_content(int(context.run_config["batch-size"]))
    return Message(with_compute(content, busy) if busy > 0 else content, reply_to=message)
