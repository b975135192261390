"""Seeds derived from the run's seed, so every party computes the same ones without sending them."""

from __future__ import annotations

import numpy as np


def derive_seed(*parts: int) -> int:
    """Return a 32-bit seed determined by ``parts`` (e.g. run seed, epoch, client).

    Distinct tuples give independent-looking seeds (NumPy's `SeedSequence`
    hashing), and the result is the same on every machine. `SeedSequence`
    ignores trailing zero parts, so ``(s, e)`` and ``(s, e, 0)`` give the same
    seed: `epoch_seed` and `codec_seed` can coincide, which is harmless because
    they drive unrelated draws (a sampler plan, a codec's rounding noise).
    """
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


def codec_seed(seed: int, step: int, partition_id: int) -> int:
    """Seed for a codec's randomness at one step of one client."""
    return derive_seed(seed, step, partition_id)


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of an epoch's sampler plan, derived from the run's seed."""
    return derive_seed(seed, epoch)
