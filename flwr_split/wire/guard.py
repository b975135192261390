"""The boundary of untrusted input: any failure underneath becomes a `ProtocolError`.

Parsers and decoders of hostile bytes can raise nearly anything (``RecursionError``
from nested literals, ``MemoryError`` from claimed sizes, ``tokenize.TokenError``,
``EOFError``, ``OverflowError``...). Code that reads what a peer sent runs inside
`untrusted`, so exactly one exception type leaves it, with a short reason.
``KeyboardInterrupt`` and ``SystemExit`` are not ``Exception`` and pass through.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flwr_split.wire.contract import ProtocolError
from flwr_split.wire.limits import MAX_META_CHARS, MAX_META_DEPTH, MAX_REASON_CHARS


def short_reason(text: str) -> str:
    """Return ``text`` cut to `MAX_REASON_CHARS` characters."""
    if len(text) <= MAX_REASON_CHARS:
        return text
    return text[: MAX_REASON_CHARS - 3] + "..."


@contextmanager
def untrusted(what: str) -> Iterator[None]:
    """Turn any ``Exception`` raised in the block into a `ProtocolError` about ``what``.

    Parameters
    ----------
    what : str
        What is being read, for the reason (e.g. ``"'sl.acts' payload"``).

    Raises
    ------
    ProtocolError
        The block's own `ProtocolError` (reason shortened), or one wrapping any
        other exception as ``"<what>: <type>: <message>"``.
    """
    try:
        yield
    except ProtocolError as exc:
        raise ProtocolError(short_reason(str(exc))) from exc
    except Exception as exc:  # noqa: BLE001 - hostile input may make a library raise anything
        raise ProtocolError(short_reason(f"{what}: {type(exc).__name__}: {exc}")) from exc


def json_depth(text: str) -> int:
    """Return the deepest bracket nesting of JSON ``text`` (strings skipped).

    Counts ``[``/``{`` against ``]``/``}`` outside string literals, in one pass and
    without recursion, so it is safe on any input of bounded length.
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def bounded_json(text: Any, what: str) -> Any:
    """Parse JSON ``text`` after checking its type, length and nesting depth.

    Raises
    ------
    ProtocolError
        If ``text`` is not a str, is longer than `MAX_META_CHARS`, nests deeper
        than `MAX_META_DEPTH`, or is not valid JSON.
    """
    if not isinstance(text, str):
        raise ProtocolError(f"{what} must be a JSON string, got {type(text).__name__}")
    if len(text) > MAX_META_CHARS:
        raise ProtocolError(f"{what} has {len(text)} characters, at most {MAX_META_CHARS}")
    if json_depth(text) > MAX_META_DEPTH:
        raise ProtocolError(f"{what} nests deeper than {MAX_META_DEPTH}")
    with untrusted(f"{what} is not JSON"):
        return json.loads(text)
