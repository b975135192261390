"""The README's configuration table, written from the declared options."""

from __future__ import annotations

import json

from flwr_split.options.declaration import OPTIONS, Scalar


def toml_literal(value: Scalar) -> str:
    """Return ``value`` as it is written in TOML (``"digits"``, ``false``, ``0.2``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def markdown_table() -> str:
    """Return the Markdown table of `OPTIONS`: key, default and meaning, one row each."""
    rows = [
        f"| `{option.key}` | `{toml_literal(option.default)}` | {option.help} |"
        for option in OPTIONS
    ]
    return "\n".join(["| key | default | meaning |", "|---|---|---|", *rows]) + "\n"
