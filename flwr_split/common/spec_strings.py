"""Parse ``"id:key=value,key=value"`` spec strings (codecs, samplers) into config dicts."""

from __future__ import annotations

from typing import Any


def _parse_value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def parse_spec(spec: str) -> dict[str, Any]:
    """Parse ``"id:key=value,key=value"`` into a config dict with ``"id"``.

    Raises
    ------
    ValueError
        If the string is empty, an option is not ``key=value``, or a key is
        ``id`` or given twice (the later value would silently win).

    Examples
    --------
    >>> parse_spec("quant:bits=8,stochastic=true")
    {'id': 'quant', 'bits': 8, 'stochastic': True}
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"spec must be a non-empty string, got {spec!r}")
    spec_id, _, options = spec.strip().partition(":")
    config: dict[str, Any] = {"id": spec_id.strip()}
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"option '{item}' in spec {spec!r} is not key=value")
        if key in config:
            raise ValueError(f"option '{key}' given twice (or as the id) in spec {spec!r}")
        config[key] = _parse_value(value.strip())
    return config
