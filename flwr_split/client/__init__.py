"""Client side of split learning: the ClientApp handlers and the per-node session state."""

from flwr_split.client.handlers import register_split_handlers
from flwr_split.client.session import ClientSession

__all__ = ["ClientSession", "register_split_handlers"]
