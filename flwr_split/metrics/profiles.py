"""Resource profiles of virtual clients (compute speed, link bandwidth) and the simulated clock.

The clock models what a step would take on the profiled devices, next to the
measured wall time of the simulation. Every exchange (one push of messages
and the pull of their replies) is a barrier: it lasts as long as its slowest
participant, whose time is

    latency + bytes_down / downlink + compute_s * compute_factor + bytes_up / uplink + latency

with ``compute_s`` the client's compute time measured on this machine and the
bytes those of the serialized messages. A step's simulated time is the sum of
its exchanges plus the server's own measured time between them.

Straggler scenario (arXiv 2407.15738): a fraction of the clients are
stragglers; besides any slowdown, each of their exchanges takes an extra
latency of ``straggler_latency`` times the median exchange time (fixed, or
drawn from an exponential with that mean at every exchange). `planned_seconds`
applies the same model to a whole schedule without running it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

MBPS = 1e6 / 8
"""Bytes per second in one megabit per second."""


@dataclass(frozen=True)
class ClientProfile:
    """Resources of one virtual client.

    Parameters
    ----------
    compute_factor : float
        Multiplier on compute time measured here (10 = ten times slower).
    uplink_mbps, downlink_mbps : float
        Link bandwidth in megabits per second.
    latency_s : float
        One-way latency in seconds.
    straggler : bool
        Whether the clock adds the straggler latency to this client's exchanges.
    """

    compute_factor: float = 1.0
    uplink_mbps: float = 10.0
    downlink_mbps: float = 50.0
    latency_s: float = 0.0
    straggler: bool = False

    def exchange_seconds(self, bytes_down: int, compute_s: float, bytes_up: int) -> float:
        """Seconds for one request/reply: downlink, compute, uplink and two latencies."""
        return (
            2 * self.latency_s
            + bytes_down / (self.downlink_mbps * MBPS)
            + compute_s * self.compute_factor
            + bytes_up / (self.uplink_mbps * MBPS)
        )


@dataclass(frozen=True)
class ProfileConfig:
    """How to give every client a profile.

    Parameters
    ----------
    compute_factor : float (default: 1.0)
        Compute slowdown of a regular client against this machine.
    uplink_mbps, downlink_mbps : float (default: 10.0, 50.0)
        Bandwidth of a regular client.
    latency_ms : float (default: 0.0)
        One-way latency of every client.
    straggler_fraction : float (default: 0.0)
        Fraction of clients (rounded to nearest, chosen at random from
        ``seed``) that are stragglers.
    straggler_slowdown : float (default: 10.0)
        A straggler computes this many times slower and its links are this
        many times slower.
    straggler_latency : float (default: 0.0)
        Extra latency of a straggler's exchange, as a multiple ``lambda`` of the
        median exchange time (0: none).
    straggler_delay : str (default: "fixed")
        ``"fixed"`` (always ``lambda`` x median) or ``"exponential"`` (drawn
        with that mean at every exchange).
    seed : int (default: 0)
        Seed of the straggler choice and of the exponential delays.
    """

    compute_factor: float = 1.0
    uplink_mbps: float = 10.0
    downlink_mbps: float = 50.0
    latency_ms: float = 0.0
    straggler_fraction: float = 0.0
    straggler_slowdown: float = 10.0
    straggler_latency: float = 0.0
    straggler_delay: str = "fixed"
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.compute_factor, self.uplink_mbps, self.downlink_mbps) <= 0:
            raise ValueError("compute_factor and bandwidths must be > 0")
        if self.latency_ms < 0 or not 0 <= self.straggler_fraction <= 1:
            raise ValueError("latency_ms must be >= 0 and straggler_fraction in [0, 1]")
        if self.straggler_slowdown < 1 or self.straggler_latency < 0:
            raise ValueError("straggler_slowdown must be >= 1 and straggler_latency >= 0")
        if self.straggler_delay not in STRAGGLER_DELAYS:
            raise ValueError(f"straggler_delay must be one of {STRAGGLER_DELAYS}")

    def stragglers(self, num_clients: int) -> np.ndarray:
        """Return the boolean straggler mask of the clients (seeded choice)."""
        chosen = np.random.default_rng(self.seed).permutation(num_clients)
        mask = np.zeros(num_clients, dtype=bool)
        mask[chosen[: round(self.straggler_fraction * num_clients)]] = True
        return mask

    def clock(self) -> SimulatedClock:
        """Return a fresh clock with this config's straggler latency."""
        return SimulatedClock(
            straggler_latency=self.straggler_latency,
            straggler_delay=self.straggler_delay,
            seed=self.seed,
        )

    def assign(self, num_clients: int) -> list[ClientProfile]:
        """Return one profile per client index (partition id order)."""
        stragglers = self.stragglers(num_clients)
        regular = ClientProfile(
            self.compute_factor, self.uplink_mbps, self.downlink_mbps, self.latency_ms / 1e3
        )
        slow = self.straggler_slowdown
        straggler = ClientProfile(
            self.compute_factor * slow,
            self.uplink_mbps / slow,
            self.downlink_mbps / slow,
            regular.latency_s,
            straggler=True,
        )
        return [straggler if stragglers[k] else regular for k in range(num_clients)]


STRAGGLER_DELAYS = ("fixed", "exponential")


def straggler_extra(
    stragglers: np.ndarray, mean_s: float, delay: str, rng: np.random.Generator
) -> np.ndarray:
    """Extra seconds per client of one step: ``mean_s`` for stragglers (or Exp(mean_s)), else 0."""
    if delay == "fixed":
        return np.where(stragglers, mean_s, 0.0)
    return np.where(stragglers, rng.exponential(mean_s, stragglers.shape), 0.0)


@dataclass
class SimulatedClock:
    """Accumulates simulated seconds: exchanges (slowest participant) plus server time.

    It also keeps each client's exchange seconds since `take_delays`, which
    the strategy reports to delay-aware samplers.

    Parameters
    ----------
    seconds : float (default: 0.0)
        Starting time.
    straggler_latency : float (default: 0.0)
        Extra latency of a straggler's exchange, as a multiple of the median
        exchange time seen so far (stragglers' extra latency excluded).
    straggler_delay : str (default: "fixed")
        ``"fixed"`` or ``"exponential"`` (see `ProfileConfig`).
    seed : int (default: 0)
        Seed of the exponential delays.
    """

    seconds: float = 0.0
    straggler_latency: float = 0.0
    straggler_delay: str = "fixed"
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng([self.seed, 2])
        self._durations: list[float] = []
        self._client_seconds: dict[int, list[float]] = {}

    def exchange(
        self,
        participants: list[tuple[ClientProfile, int, float, int]],
        clients: list[int] | None = None,
    ) -> float:
        """Advance by one exchange of ``(profile, bytes_down, compute_s, bytes_up)`` tuples.

        ``clients`` names the participants (partition ids) for `take_delays`.
        """
        if not participants:
            return 0.0
        base = np.array([p.exchange_seconds(d, c, u) for p, d, c, u in participants])
        self._durations.append(float(base.max()))
        if self.straggler_latency > 0:
            mean_s = self.straggler_latency * float(np.median(self._durations))
            stragglers = np.array([p.straggler for p, *_ in participants])
            base = base + straggler_extra(stragglers, mean_s, self.straggler_delay, self._rng)
        for client, seconds in zip(clients or [], base, strict=False):
            self._client_seconds.setdefault(client, []).append(float(seconds))
        duration = float(base.max())
        self.seconds += duration
        return duration

    def take_delays(self, num_clients: int) -> np.ndarray | None:
        """Return each client's mean exchange seconds since the last call (None if none seen).

        Clients without an exchange get the mean of the others.
        """
        if not self._client_seconds:
            return None
        means = {k: float(np.mean(v)) for k, v in self._client_seconds.items()}
        self._client_seconds = {}
        fill = float(np.mean(list(means.values())))
        return np.array([means.get(k, fill) for k in range(num_clients)])

    def server(self, seconds: float) -> None:
        """Advance by server-side compute time."""
        self.seconds += seconds

    def state_dict(self) -> dict[str, Any]:
        """Return the time, the delay generator and the exchange times so far (plain data)."""
        return {
            "seconds": self.seconds,
            "rng": self._rng.bit_generator.state,
            "durations": list(self._durations),
            "client_seconds": {k: list(v) for k, v in self._client_seconds.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict`."""
        self.seconds = float(state["seconds"])
        self._rng.bit_generator.state = state["rng"]
        self._durations = [float(d) for d in state["durations"]]
        self._client_seconds = {
            int(k): [float(s) for s in v] for k, v in state["client_seconds"].items()
        }


def planned_step_seconds(
    plan: np.ndarray,
    per_sample_s: np.ndarray | float,
    step_latency_s: float,
    server_per_sample_s: float,
    extra_s: Callable[[], np.ndarray] | None = None,
) -> np.ndarray:
    """Return the simulated seconds of each step: ``max_k(n_tk tau_k + l_k) + tau_s b_t``.

    The maximum runs over the clients active at step ``t``; a step without
    active clients takes no time. This is the time model of arXiv 2407.15738's
    code (the slowest participant, then the server).

    Parameters
    ----------
    plan : np.ndarray
        Schedule ``n[t, k]`` of a sampler.
    per_sample_s : np.ndarray or float
        Per-sample client forward+backward seconds ``tau_k``.
    step_latency_s : float
        Latency every active client adds to a step.
    server_per_sample_s : float
        Server seconds per sample of the union batch.
    extra_s : Callable[[], np.ndarray] or None (default: None)
        Called once per step for each client's extra latency (stragglers).
    """
    seconds = np.zeros(len(plan))
    for t, row in enumerate(plan):
        active = row > 0
        if active.any():
            times = row * per_sample_s + step_latency_s
            if extra_s is not None:
                times = times + extra_s()
            seconds[t] = float(times[active].max()) + server_per_sample_s * float(row.sum())
    return seconds
