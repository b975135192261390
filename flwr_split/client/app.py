"""The ClientApp that `flwr run .` starts on every SuperNode."""

from flwr.clientapp import ClientApp

from flwr_split.client.handlers import register_split_handlers

app = register_split_handlers(ClientApp())
