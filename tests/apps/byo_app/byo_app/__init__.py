"""A user's split-learning App, written against flwr-split's public API only."""
