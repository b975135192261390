"""Server machinery every SL strategy reuses: node waits, exchanges, the run's result."""

from flwr_split.server.result import SplitResult

__all__ = ["SplitResult"]
