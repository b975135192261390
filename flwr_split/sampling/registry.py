"""Sampler registry: ids to classes, spec strings to sampler instances.

The built-in samplers are registered by `flwr_split.sampling`; a sampler of
another installed package is found through the entry-point group
``flwr_split.samplers`` (see `flwr_split.common.registry`).
"""

from __future__ import annotations

from flwr_split.common.registry import Registry, RegistryError
from flwr_split.common.spec_strings import parse_spec
from flwr_split.sampling.base import Sampler

_SAMPLERS: Registry[type[Sampler]] = Registry("sampler", "flwr_split.samplers")


def register_sampler(cls: type[Sampler]) -> type[Sampler]:
    """Register ``cls`` under its ``sampler_id`` (usable as a class decorator).

    Raises
    ------
    ValueError
        If ``cls`` has no ``sampler_id`` or another class is registered under it.
    """
    return _SAMPLERS.register(getattr(cls, "sampler_id", None), cls)


def registered_samplers() -> list[str]:
    """Return the ids of the registered samplers and of those installed packages declare, sorted."""
    return _SAMPLERS.names()


def get_sampler(spec: str) -> Sampler:
    """Build a sampler from a spec string such as ``"ugs"`` or ``"lds:c=1.0,delta=0"``.

    Built-in ids: ``fixed`` (classic parallel SL), ``ugs``, ``lds``, ``fpls``, ``fls``.

    Raises
    ------
    ValueError
        If the id is neither registered nor declared by an installed package
        (the message names the known ids), or options are given that the
        sampler lacks.
    """
    config = parse_spec(spec)
    sampler_id = config.pop("id")
    try:
        cls = _SAMPLERS.get(sampler_id)
    except RegistryError as exc:
        raise ValueError(str(exc)) from exc
    if not (isinstance(cls, type) and issubclass(cls, Sampler)) or (
        getattr(cls, "sampler_id", None) != sampler_id
    ):
        raise ValueError(
            f"sampler {sampler_id!r} of group '{_SAMPLERS.group}' is {cls!r}, "
            f"not a Sampler class with sampler_id {sampler_id!r}"
        )
    try:
        return cls(**config)
    except TypeError as exc:
        raise ValueError(f"bad options for sampler {sampler_id!r}: {exc}") from exc
