"""Measurement: bytes on the wire, the simulated clock of virtual clients, result files."""

from flwr_split.metrics.profiles import ClientProfile, ProfileConfig, SimulatedClock
from flwr_split.metrics.traffic import DOWN, UP, TrafficLog

__all__ = ["DOWN", "UP", "ClientProfile", "ProfileConfig", "SimulatedClock", "TrafficLog"]
