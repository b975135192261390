"""Runs without Flower's processes: an in-process Grid, and replays of planned batches."""

from flwr_split.testing.inprocess import InProcessGrid

__all__ = ["InProcessGrid"]
