"""Echo ClientApp: answers every message with an empty reply, touching nothing."""

from __future__ import annotations

from flwr.app import Context, Message, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


@app.query("echo_hello")
def hello(message: Message, _context: Context) -> Message:
    """Reply with empty content (the warm-up round, like ``query.sl_hello``)."""
    return Message(RecordDict(), reply_to=message)


@app.train("echo_step")
def step(message: Message, _context: Context) -> Message:
    """Reply with empty content (one SL step's round trip, without the SL work)."""
    return Message(RecordDict(), reply_to=message)
