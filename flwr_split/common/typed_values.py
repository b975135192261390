"""One rule for reading typed scalars from configs, records and codec metadata."""

from __future__ import annotations

from typing import Any


def as_kind(value: Any, kind: type) -> Any:
    """Return ``value`` as a ``kind`` scalar, or raise `TypeError`.

    An int is accepted where a float is expected (and converted); a bool is
    never accepted as an int or float, though Python treats it as one.

    Parameters
    ----------
    value : Any
        The value read from a run config, a ConfigRecord or codec metadata.
    kind : type
        ``bool``, ``int``, ``float`` or ``str``.

    Returns
    -------
    Any
        ``value``, converted to float if ``kind`` is float and it was an int.
    """
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value
