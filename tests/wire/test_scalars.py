"""Records built by `flwr_split.wire.scalars` are Flower's, and refuse what Flower refuses."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import ConfigRecord, MetricRecord

from flwr_split.wire.scalars import config_record, metric_record

VALUES = [
    1,
    -2.5,
    True,
    "text",
    b"raw",
    [],
    [1, 2],
    [1.0, 2.0],
    [True, False],
    ["a", "b"],
    [1, 2.0],
    [1.0, 2],
    [1, True],
    np.float64(0.5),
    np.int64(3),
    None,
    {"a": 1},
    (1, 2),
]


@pytest.mark.parametrize(
    "ours, flowers", [(config_record, ConfigRecord), (metric_record, MetricRecord)]
)
@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_same_record_or_same_refusal_as_flower(ours, flowers, value):
    try:
        expected = flowers({"k": value, "step": 3})
    except TypeError:
        with pytest.raises(TypeError):
            ours({"k": value, "step": 3})
        return
    built = ours({"k": value, "step": 3})
    assert type(built) is flowers and vars(built) == vars(expected)
    assert built.object_id == expected.object_id


@pytest.mark.parametrize("ours", [config_record, metric_record])
def test_keys_must_be_strings(ours):
    with pytest.raises(TypeError):
        ours({1: 2})
