"""Batch planners for parallel SL: which client sends how many samples per step."""

from __future__ import annotations

from flwr_split.common.spec_strings import parse_spec
from flwr_split.sampling.base import Sampler, plan_offsets
from flwr_split.sampling.deviation import batch_deviation, class_shares
from flwr_split.sampling.fixed import FixedLocalBatch
from flwr_split.sampling.lds import LatentDirichlet
from flwr_split.sampling.local import FixedLocal, FixedProportionalLocal
from flwr_split.sampling.ugs import UniformGlobal

_SAMPLERS: dict[str, type[Sampler]] = {
    cls.sampler_id: cls
    for cls in (FixedLocalBatch, UniformGlobal, LatentDirichlet, FixedProportionalLocal, FixedLocal)
}


def get_sampler(spec: str) -> Sampler:
    """Build a sampler from a spec string such as ``"ugs"`` or ``"lds:c=1.0,delta=0"``.

    Ids: ``fixed`` (classic parallel SL), ``ugs``, ``lds``, ``fpls``, ``fls``.

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


__all__ = [
    "FixedLocal",
    "FixedLocalBatch",
    "FixedProportionalLocal",
    "LatentDirichlet",
    "Sampler",
    "UniformGlobal",
    "batch_deviation",
    "class_shares",
    "get_sampler",
    "plan_offsets",
]
