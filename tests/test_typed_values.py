"""The one typing rule behind run configs, order records and codec metadata."""

from __future__ import annotations

import pytest

from flwr_split.common.typed_values import as_kind
from flwr_split.options import RunSettings


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [(3, int, 3), (3, float, 3.0), (2.5, float, 2.5), (True, bool, True), ("a", str, "a")],
)
def test_accepted_values(value, kind, expected):
    result = as_kind(value, kind)
    assert result == expected and type(result) is kind


@pytest.mark.parametrize(
    ("value", "kind"),
    [(True, int), (False, float), (1, bool), (2.0, int), ("3", int), (None, float), (1, str)],
)
def test_refused_values(value, kind):
    with pytest.raises(TypeError, match=f"expected {kind.__name__}"):
        as_kind(value, kind)


def test_run_config_names_the_bad_key():
    with pytest.raises(ValueError, match="run config 'batch-size' must be int, got True"):
        RunSettings.from_run_config({"batch-size": True})
