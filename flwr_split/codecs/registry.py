"""Codec registry: ids to classes, spec strings and configs to codec instances."""

from __future__ import annotations

from typing import Any

from flwr_split.codecs.base import Codec, CodecError
from flwr_split.common.spec_strings import parse_spec

_REGISTRY: dict[str, type[Codec]] = {}


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Register ``cls`` under its ``codec_id`` (usable as a class decorator)."""
    codec_id = getattr(cls, "codec_id", None)
    if not isinstance(codec_id, str) or not codec_id:
        raise ValueError(f"{cls.__name__} has no codec_id")
    if _REGISTRY.get(codec_id, cls) is not cls:
        raise ValueError(f"codec id '{codec_id}' is already registered")
    _REGISTRY[codec_id] = cls
    return cls


def registered_codecs() -> list[str]:
    """Return the ids of all registered codecs, sorted."""
    return sorted(_REGISTRY)


def get_codec(spec: str | dict[str, Any]) -> Codec:
    """Build a codec from a spec string (``"quant:bits=8"``) or a config dict.

    Parameters
    ----------
    spec : str or dict
        Either a spec string ``"<id>[:key=value,...]"`` or the output of a
        codec's ``get_config()``.

    Returns
    -------
    Codec
        A new codec instance.

    Raises
    ------
    CodecError
        If the id is unknown or the options do not fit the codec.
    """
    try:
        config = parse_spec(spec) if isinstance(spec, str) else dict(spec)
    except ValueError as exc:
        raise CodecError(f"bad codec spec: {exc}") from exc
    codec_id = config.get("id")
    if codec_id not in _REGISTRY:
        registered = ", ".join(registered_codecs())
        raise CodecError(f"unknown codec {codec_id!r}; registered: {registered}")
    try:
        return _REGISTRY[codec_id].from_config(config)
    except TypeError as exc:
        raise CodecError(f"bad options for codec '{codec_id}': {exc}") from exc
