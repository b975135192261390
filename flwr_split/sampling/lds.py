"""Latent Dirichlet sampling (LDS), reconstructed: Dirichlet client shares per step, straggler tilt.

The algorithm of arXiv 2407.15738 v1/v2 is not public; this is the
reconstruction of ``specs/global_sampling.md`` section 2.3 (``lds_mode="dirichlet"``).
"""

from __future__ import annotations

import numpy as np

from flwr_split.sampling.base import Sampler, check_counts


def largest_remainder(total: int, shares: np.ndarray) -> np.ndarray:
    """Round ``total * shares`` to integers summing to ``total`` (largest remainders first)."""
    exact = total * shares
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        counts[np.argsort(counts - exact, kind="stable")[:short]] += 1
    return counts


def repair_capacity(counts: np.ndarray, capacity: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """Clip ``counts`` at ``capacity``; give the excess to the largest shares with room left."""
    clipped = np.minimum(counts, capacity)
    excess = int(counts.sum() - clipped.sum())
    for k in np.argsort(-shares, kind="stable"):
        if excess == 0:
            break
        extra = min(excess, int(capacity[k] - clipped[k]))
        clipped[k] += extra
        excess -= extra
    return clipped


def standardized(delays: np.ndarray) -> np.ndarray:
    """Return ``(d - mean) / std`` of the delays, or zeros if they are all equal."""
    spread = delays.std()
    return (delays - delays.mean()) / spread if spread > 0 else np.zeros_like(delays)


class LatentDirichlet(Sampler):
    """LDS: at each step draw client shares from a Dirichlet, allocate the batch by them.

    While data is left: ``b = min(B, R)`` with ``R`` the samples left; the
    concentration is ``A = c * Z`` with ``Z = n (R - 1) / (R - n) - 1`` and
    ``n = b`` by default, so that with ``c = 1`` each client's share has the
    mean and variance it has under uniform global sampling. Client ``k`` gets
    ``alpha_k = A * R_k / R * exp(delta * z_k)``, with ``z_k`` its standardized
    delay; shares ``pi ~ Dir(alpha)`` are rounded to ``b`` samples by largest
    remainders and clipped at what each client has left. The last step takes
    everything left. Each sample is used once; an epoch has ``ceil(N / B)`` steps.

    Large ``c`` gives deterministic proportional batches (every client in every
    step); small ``c`` gives batches from few clients (little waiting on
    stragglers, large batch deviation). ``delta > 0`` gives slow clients larger
    shares early on, so they take part in fewer steps.

    Delays come from `set_delays` (the strategy reports each client's mean step
    time of the previous epoch); without them, or when they are all equal,
    there is no tilt.

    Parameters
    ----------
    c : float (default: 1.0)
        Concentration multiplier (> 0).
    delta : float (default: 0.0)
        Signed straggler tilt.
    n : int (default: 0)
        Calibration sample size; ``0`` means the step's batch size ``b``.
    """

    sampler_id = "lds"

    def __init__(self, c: float = 1.0, delta: float = 0.0, n: int = 0) -> None:
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
            raise ValueError(f"c must be a number > 0, got {c!r}")
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise ValueError(f"delta must be a number, got {delta!r}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        self.c, self.delta, self.n = float(c), float(delta), n
        self.delays: np.ndarray | None = None

    def set_delays(self, delays: np.ndarray | None) -> None:
        """Report each client's mean step delay in seconds (``None``: unknown, no tilt)."""
        self.delays = None if delays is None else np.asarray(delays, dtype=np.float64)

    def tilt(self, num_clients: int) -> np.ndarray:
        """Return ``exp(delta * z_k)`` per client (ones without delays or with ``delta = 0``)."""
        if self.delays is None or self.delta == 0:
            return np.ones(num_clients)
        if self.delays.shape != (num_clients,):
            raise ValueError(f"{self.delays.size} delays for {num_clients} clients")
        return np.exp(self.delta * standardized(self.delays))

    def concentration(self, batch: int, remaining: int) -> float:
        """Return ``A = c * Z`` for a step of ``batch`` samples out of ``remaining``."""
        n = self.n if 0 < self.n < remaining else batch
        return self.c * (n * (remaining - 1) / (remaining - n) - 1)

    def plan(self, counts: np.ndarray, batch_size: int, seed: int) -> np.ndarray:
        """Plan the epoch step by step from the samples each client has left."""
        counts = check_counts(counts, batch_size)
        rng = np.random.default_rng(seed)
        tilt = self.tilt(counts.size)
        remaining = counts.copy()
        rows = []
        while (left := int(remaining.sum())) > 0:
            batch = min(batch_size, left)
            if batch == left:
                rows.append(remaining.copy())
                break
            weights = remaining / left * tilt
            shares = self._draw_shares(rng, self.concentration(batch, left), weights)
            row = repair_capacity(largest_remainder(batch, shares), remaining, shares)
            rows.append(row)
            remaining -= row
        return np.array(rows, dtype=np.int64).reshape(len(rows), counts.size)

    @staticmethod
    def _draw_shares(
        rng: np.random.Generator, concentration: float, weights: np.ndarray
    ) -> np.ndarray:
        """Draw ``pi ~ Dir(concentration * weights)`` over the clients with weight > 0.

        In the limit of a vanishing concentration (or when the draw underflows)
        the Dirichlet puts all mass on one client, chosen with probability
        proportional to its weight.
        """
        alive = np.flatnonzero(weights > 0)
        shares = np.zeros_like(weights)
        draw = rng.dirichlet(concentration * weights[alive]) if concentration > 0 else None
        if draw is None or not np.isfinite(draw).all() or draw.sum() <= 0:
            shares[rng.choice(alive, p=weights[alive] / weights[alive].sum())] = 1.0
        else:
            shares[alive] = draw
        return shares

    def get_config(self) -> dict[str, object]:
        """Return ``{"id": "lds", "c": c, "delta": delta, "n": n}``."""
        return {"id": self.sampler_id, "c": self.c, "delta": self.delta, "n": self.n}
