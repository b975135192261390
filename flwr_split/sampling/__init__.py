"""Batch planners for parallel SL: which client sends how many samples per step."""

from __future__ import annotations

from flwr_split.sampling.base import Sampler
from flwr_split.sampling.fixed import FixedLocalBatch
from flwr_split.spec_strings import parse_spec

_SAMPLERS: dict[str, type[Sampler]] = {FixedLocalBatch.sampler_id: FixedLocalBatch}


def get_sampler(spec: str) -> Sampler:
    """Build a sampler from a spec string such as ``"fixed"``.

    Raises
    ------
    ValueError
        If the id is unknown or options are given that the sampler lacks.
    """
    config = parse_spec(spec)
    sampler_id = config.pop("id")
    if sampler_id not in _SAMPLERS:
        raise ValueError(f"unknown sampler {sampler_id!r}; available: {sorted(_SAMPLERS)}")
    try:
        return _SAMPLERS[sampler_id](**config)
    except TypeError as exc:
        raise ValueError(f"bad options for sampler {sampler_id!r}: {exc}") from exc


__all__ = ["FixedLocalBatch", "Sampler", "get_sampler"]
