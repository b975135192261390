"""The ClientApp handlers of split learning: hello, training step and evaluation forward.

Every handler turns any failure into an error reply (`reject_bad_messages`), so
a bad message never takes the ClientApp down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from functools import wraps

import torch
from flwr.app import ConfigRecord, Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp

from flwr_split.client.session import SESSION_CACHE, ClientSession, partition_of
from flwr_split.tasks import SplitTask, register_task
from flwr_split.wire import (
    ERROR_CODE_BAD_MESSAGE,
    KEY_BOTTOM,
    KEY_BOTTOM_GRAD,
    KEY_INFO,
    KEY_ORDER,
    ProtocolError,
    StepOrder,
    hello_fields,
    info_record,
    require_record,
    weights_to_record,
)
from flwr_split.wire.requests import check_request

logger = logging.getLogger("flwr").getChild(__name__)


def _order(message: Message) -> StepOrder:
    return StepOrder.from_record(require_record(message.content, KEY_ORDER, ConfigRecord))


Handler = Callable[[Message, Context], Message]


def reject_bad_messages(handler: Handler) -> Handler:
    """Turn any failure of ``handler`` into an error reply that names the reason."""

    @wraps(handler)
    def guarded(message: Message, context: Context) -> Message:
        code = ERROR_CODE_BAD_MESSAGE
        try:
            return handler(message, context)
        except ProtocolError as exc:
            code, reason = exc.code, f"{message.metadata.message_type} rejected: {exc}"
            logger.warning(reason)
        except Exception as exc:  # noqa: BLE001 - any failure must become a reply
            reason = f"{message.metadata.message_type} failed: {type(exc).__name__}: {exc}"
            logger.exception(reason)
        return Message(Error(code=code, reason=reason), reply_to=message)

    return guarded


@reject_bad_messages
def handle_hello(message: Message, context: Context) -> Message:
    """Reply with what the server needs to know of this client (``query.sl_hello``).

    Partition id, sample counts, bottom-weights version, and in place of any
    data: per-class training counts and the input shape and dtype of one sample.
    """
    check_request(None, message.content)
    session = ClientSession.open(message, context)
    _, num_partitions = partition_of(context)
    train = session.train
    try:
        described = hello_fields(train.x, train.y, session.config.task.definition.num_classes)
    except ValueError as exc:
        raise ProtocolError(str(exc)) from exc
    info = info_record(
        partition_id=session.partition_id,
        num_partitions=num_partitions,
        train_count=len(train),
        test_count=len(session.test),
        version=session.version,
        **described,
    )
    return Message(RecordDict({KEY_INFO: info}), reply_to=message)


def _serve_order(
    message: Message, context: Context, work: Callable[[ClientSession, StepOrder, RecordDict], None]
) -> Message:
    """Check the records, open the session, adopt weights, check the version, work, save, reply."""
    started = time.perf_counter()
    order = _order(message)
    check_request(order, message.content)
    session = ClientSession.open(message, context)
    try:
        session.adopt_weights(message.content, order.version)
        session.check_version(order.version)
        reply = RecordDict()
        work(session, order, reply)
    except BaseException:
        SESSION_CACHE.evict((context.run_id, context.node_id, session.token))
        raise
    session.save(context)
    reply[KEY_INFO] = info_record(
        partition_id=session.partition_id, compute_s=time.perf_counter() - started
    )
    return Message(reply, reply_to=message)


@reject_bad_messages
def handle_step(message: Message, context: Context) -> Message:
    """Run one SL step (``train.sl_step``): backward of an earlier slice, then forward."""

    def step(session: ClientSession, order: StepOrder, reply: RecordDict) -> None:
        if order.bwd_count:
            bottom_grad = session.backward(message.content, order)
            if bottom_grad is not None:
                reply[KEY_BOTTOM_GRAD] = bottom_grad
        if order.return_weights:
            reply[KEY_BOTTOM] = weights_to_record(session.bottom)
        if order.fwd_count:
            fwd_slice = (order.fwd_epoch, order.fwd_offset, order.fwd_count)
            inputs, labels = session.batch(*fwd_slice)
            session.forward(inputs, labels, order.step, reply, train_slice=fwd_slice)

    return _serve_order(message, context, step)


@reject_bad_messages
def handle_evaluate(message: Message, context: Context) -> Message:
    """Send activations and labels of the client's whole test shard (``evaluate.sl_forward``)."""

    def evaluate(session: ClientSession, order: StepOrder, reply: RecordDict) -> None:
        session.forward(torch.from_numpy(session.test.x), session.test.y, order.step, reply)

    return _serve_order(message, context, evaluate)


def register_split_handlers(app: ClientApp, tasks: Iterable[SplitTask] = ()) -> ClientApp:
    """Register the SL handlers on a user's ``ClientApp`` and return it.

    Parameters
    ----------
    app : ClientApp
        The ClientApp to extend.
    tasks : Iterable[SplitTask] (default: ())
        The App's own tasks. The handlers carry them and register them in
        whichever process runs them: Flower's Ray simulation loads the
        ClientApp once and ships the object to its actors, where module-level
        `register_task` calls of the App never ran. Tasks that an installed
        package declares (entry-point group ``flwr_split.tasks``) and the
        built-in ones need not be listed.
    """
    known = tuple(tasks)
    for task in known:
        register_task(task)
    app.query("sl_hello")(_knowing(known, handle_hello))
    app.train("sl_step")(_knowing(known, handle_step))
    app.evaluate("sl_forward")(_knowing(known, handle_evaluate))
    return app


def _knowing(tasks: tuple[SplitTask, ...], handler: Handler) -> Handler:
    """Return ``handler`` registering ``tasks`` first (itself if there are none)."""
    if not tasks:
        return handler
    inner = handler.__wrapped__  # type: ignore[attr-defined]

    @reject_bad_messages
    @wraps(inner)
    def handle(message: Message, context: Context) -> Message:
        for task in tasks:
            register_task(task)
        return inner(message, context)

    return handle
