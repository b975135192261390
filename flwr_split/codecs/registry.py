"""Codec registry: ids to classes, spec strings and configs to codec instances.

Built-in codecs register themselves with `register_codec` on import; a codec of
another installed package is found through the entry-point group
``flwr_split.codecs`` (see `flwr_split.common.registry`).
"""

from __future__ import annotations

from typing import Any

from flwr_split.codecs.base import Codec, CodecError
from flwr_split.common.registry import Registry, RegistryError
from flwr_split.common.spec_strings import parse_spec

_CODECS: Registry[type[Codec]] = Registry("codec", "flwr_split.codecs")


def _codec_id(cls: type[Codec]) -> str:
    codec_id = getattr(cls, "codec_id", None)
    if not isinstance(codec_id, str) or not codec_id:
        raise ValueError(f"{cls.__name__} has no codec_id")
    return codec_id


def register_codec(cls: type[Codec]) -> type[Codec]:
    """Register ``cls`` under its ``codec_id`` (usable as a class decorator).

    Raises
    ------
    ValueError
        If ``cls`` has no ``codec_id`` or another class is registered under it.
    """
    return _CODECS.register(_codec_id(cls), cls)


def registered_codecs() -> list[str]:
    """Return the ids of the registered codecs and of those installed packages declare, sorted."""
    return _CODECS.names()


def _codec_class(codec_id: str) -> type[Codec]:
    """Return the class registered or declared under ``codec_id``; raise `CodecError` if none."""
    try:
        cls = _CODECS.get(codec_id)
    except RegistryError as exc:
        raise CodecError(str(exc)) from exc
    if (
        not (isinstance(cls, type) and issubclass(cls, Codec))
        or getattr(cls, "codec_id", None) != codec_id
    ):
        raise CodecError(
            f"codec {codec_id!r} of group '{_CODECS.group}' is {cls!r}, "
            f"not a Codec class with codec_id {codec_id!r}"
        )
    return cls


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
        If the id is neither registered nor declared by an installed package
        (the message names the known ids), or the options do not fit the codec.
    """
    try:
        config = parse_spec(spec) if isinstance(spec, str) else dict(spec)
    except ValueError as exc:
        raise CodecError(f"bad codec spec: {exc}") from exc
    codec_id = config.get("id")
    cls = _codec_class(codec_id)
    try:
        return cls.from_config(config)
    except TypeError as exc:
        raise CodecError(f"bad options for codec '{codec_id}': {exc}") from exc


def example_spec(codec_id: str, *, signed: bool = False) -> str:
    """Return the typical spec of a codec: its `Codec.example_spec`, else its id (its defaults).

    Parameters
    ----------
    codec_id : str
        A registered or declared codec id.
    signed : bool (default: False)
        The spec must take tensors with negative values (gradients): the
        codec's `Codec.signed_example_spec` if its typical setting refuses them.

    Raises
    ------
    CodecError
        If the id is unknown, or ``signed`` and the codec declares no setting
        that takes negative values.
    """
    cls = _codec_class(codec_id)
    spec = cls.example_spec or codec_id
    if signed and not get_codec(spec).accepts_negative:
        spec = cls.signed_example_spec
        if not spec or not get_codec(spec).accepts_negative:
            raise CodecError(f"codec {codec_id!r} declares no setting for negative values")
    return spec
