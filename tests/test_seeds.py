"""Derived seeds: the same on every party, different for different parts."""

from __future__ import annotations

import numpy as np

from flwr_split.common.seeds import codec_seed, derive_seed, epoch_seed


def test_derived_seeds_are_numpys_seed_sequence_of_the_parts():
    assert derive_seed(3, 1, 4) == int(np.random.SeedSequence([3, 1, 4]).generate_state(1)[0])
    assert codec_seed(3, 1, 4) == derive_seed(3, 1, 4)
    assert epoch_seed(3, 1) == derive_seed(3, 1)


def test_different_parts_give_different_seeds():
    seeds = {codec_seed(0, step, client) for step in range(20) for client in range(20)}
    assert len(seeds) == 400
    assert len({epoch_seed(0, epoch) for epoch in range(100)}) == 100


def test_trailing_zero_parts_do_not_change_the_seed():
    # SeedSequence ignores trailing zero words: documented in `derive_seed`.
    assert epoch_seed(0, 1) == codec_seed(0, 1, 0)
