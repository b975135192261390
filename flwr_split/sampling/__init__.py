"""Batch planners for parallel SL: which client sends how many samples per step."""

from __future__ import annotations

from flwr_split.sampling.base import Sampler, plan_offsets
from flwr_split.sampling.deviation import batch_deviation, class_shares, shares_of_counts
from flwr_split.sampling.fixed import FixedLocalBatch
from flwr_split.sampling.lds import LatentDirichlet
from flwr_split.sampling.local import FixedLocal, FixedProportionalLocal
from flwr_split.sampling.registry import get_sampler, register_sampler, registered_samplers
from flwr_split.sampling.ugs import UniformGlobal

for _builtin in (
    FixedLocalBatch,
    UniformGlobal,
    LatentDirichlet,
    FixedProportionalLocal,
    FixedLocal,
):
    register_sampler(_builtin)

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
    "register_sampler",
    "registered_samplers",
    "shares_of_counts",
]
