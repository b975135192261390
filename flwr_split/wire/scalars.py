"""ConfigRecords and MetricRecords of values this process made, built without per-item casts.

Flower checks every item set on a record through ``typing.get_args`` and
``typing.cast`` of generic aliases (10-40 us a record of a few items); an SL
step builds several such records per client (the step order, codec metadata,
the reply's info, the client's state metadata). Here the keys and values get
the same checks as Flower's, without the casts, and stored as item
assignment stores them (tested against Flower's constructors). Records that
arrive are Flower's own objects and are read, never built, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flwr.app import ConfigRecord, MetricRecord

CONFIG_SCALARS = (int, float, str, bytes, bool)
"""Value types of a ConfigRecord (and of its lists)."""
METRIC_SCALARS = (int, float)
"""Value types of a MetricRecord (and of its lists); not bool, though a bool is an int."""


def config_record(values: Mapping[str, Any]) -> ConfigRecord:
    """Return ``ConfigRecord(dict(values))``; `TypeError` where Flower's would raise one."""
    return _filled(ConfigRecord(), values, CONFIG_SCALARS, ())


def metric_record(values: Mapping[str, Any]) -> MetricRecord:
    """Return ``MetricRecord(dict(values))``; `TypeError` where Flower's would raise one."""
    return _filled(MetricRecord(), values, METRIC_SCALARS, (bool,))


def _filled(
    record: Any, values: Mapping[str, Any], kinds: tuple[type, ...], refused: tuple[type, ...]
) -> Any:
    """Store ``values`` in the empty ``record`` after Flower's checks, done once per item."""
    items = dict(values)
    for key, value in items.items():
        if not isinstance(key, str):
            raise TypeError(f"record keys must be str, got {type(key).__name__}")
        scalars = value if isinstance(value, list) else [value]
        if scalars and (
            not isinstance(scalars[0], kinds)
            or isinstance(scalars[0], refused)
            or not all(isinstance(v, type(scalars[0])) for v in scalars)
        ):
            raise TypeError(f"record value {key!r}: {value!r} is not of {kinds} or a list of one")
    record.__dict__["_data"].update(items)
    return record
