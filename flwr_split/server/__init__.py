"""Server machinery every SL strategy reuses: exchanges, top training, evaluation, history."""

from flwr_split.server.callbacks import EvaluateFn, SplitCallback
from flwr_split.server.result import SplitResult
from flwr_split.server.split_server import SYNC_POLICIES, SplitServer

__all__ = ["SYNC_POLICIES", "EvaluateFn", "SplitCallback", "SplitResult", "SplitServer"]
