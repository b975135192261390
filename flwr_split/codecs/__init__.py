"""Pluggable compressors for cut-layer traffic (numcodecs-style registry).

>>> from flwr_split.codecs import get_codec
>>> codec = get_codec("quant:bits=8")
>>> encoded = codec.encode(tensor)          # doctest: +SKIP
>>> codec.nbytes(encoded)                   # doctest: +SKIP
"""

from flwr_split.codecs.base import Codec, CodecContext, CodecError, Encoded, LazySeedContext
from flwr_split.codecs.registry import (
    example_spec,
    get_codec,
    register_codec,
    registered_codecs,
)

# Importing the modules registers their codecs.
from flwr_split.codecs import identity  # noqa: E402,F401  isort: skip
from flwr_split.codecs import fp16  # noqa: E402,F401  isort: skip
from flwr_split.codecs import quant  # noqa: E402,F401  isort: skip
from flwr_split.codecs import topk  # noqa: E402,F401  isort: skip
from flwr_split.codecs import ms  # noqa: E402,F401  isort: skip
from flwr_split.codecs import fedlite  # noqa: E402,F401  isort: skip
from flwr_split.codecs import slfac  # noqa: E402,F401  isort: skip
from flwr_split.codecs import powerquant  # noqa: E402,F401  isort: skip
from flwr_split.codecs import splitfc  # noqa: E402,F401  isort: skip

__all__ = [
    "Codec",
    "CodecContext",
    "CodecError",
    "Encoded",
    "LazySeedContext",
    "example_spec",
    "get_codec",
    "register_codec",
    "registered_codecs",
]
