"""flwr-split: split learning on Flower with compressed cut-layer traffic."""

__version__ = "0.1.0"
