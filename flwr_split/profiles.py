"""Resource profiles of virtual clients (compute speed, link bandwidth) and the simulated clock.

The clock models what a step would take on the profiled devices, next to the
measured wall time of the simulation. Every exchange (one push of messages
and the pull of their replies) is a barrier: it lasts as long as its slowest
participant, whose time is

    latency + bytes_down / downlink + compute_s * compute_factor + bytes_up / uplink + latency

with ``compute_s`` the client's compute time measured on this machine and the
bytes those of the serialized messages. A step's simulated time is the sum of
its exchanges plus the server's own measured time between them.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """

    compute_factor: float = 1.0
    uplink_mbps: float = 10.0
    downlink_mbps: float = 50.0
    latency_s: float = 0.0

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
    seed : int (default: 0)
        Seed of the straggler choice.
    """

    compute_factor: float = 1.0
    uplink_mbps: float = 10.0
    downlink_mbps: float = 50.0
    latency_ms: float = 0.0
    straggler_fraction: float = 0.0
    straggler_slowdown: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.compute_factor, self.uplink_mbps, self.downlink_mbps) <= 0:
            raise ValueError("compute_factor and bandwidths must be > 0")
        if self.latency_ms < 0 or not 0 <= self.straggler_fraction <= 1:
            raise ValueError("latency_ms must be >= 0 and straggler_fraction in [0, 1]")
        if self.straggler_slowdown < 1:
            raise ValueError("straggler_slowdown must be >= 1")

    def assign(self, num_clients: int) -> list[ClientProfile]:
        """Return one profile per client index (partition id order)."""
        stragglers = set(
            np.random.default_rng(self.seed)
            .permutation(num_clients)[: round(self.straggler_fraction * num_clients)]
            .tolist()
        )
        regular = ClientProfile(
            self.compute_factor, self.uplink_mbps, self.downlink_mbps, self.latency_ms / 1e3
        )
        slow = self.straggler_slowdown
        straggler = ClientProfile(
            self.compute_factor * slow,
            self.uplink_mbps / slow,
            self.downlink_mbps / slow,
            regular.latency_s,
        )
        return [straggler if k in stragglers else regular for k in range(num_clients)]


@dataclass
class SimulatedClock:
    """Accumulates simulated seconds: exchanges (slowest participant) plus server time."""

    seconds: float = 0.0

    def exchange(self, participants: list[tuple[ClientProfile, int, float, int]]) -> float:
        """Advance by one exchange of ``(profile, bytes_down, compute_s, bytes_up)`` tuples."""
        duration = max((p.exchange_seconds(d, c, u) for p, d, c, u in participants), default=0.0)
        self.seconds += duration
        return duration

    def server(self, seconds: float) -> None:
        """Advance by server-side compute time."""
        self.seconds += seconds
