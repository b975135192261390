"""Codec base class and the `Encoded` payload that travels in a Flower Message."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import torch

from flwr_split.common.typed_values import as_kind

Scalar = int | float | str | bool
"""A metadata value: what a Flower `ConfigRecord` can hold without lists."""


MAX_DIM = 2**40
"""Largest tensor dimension a payload may declare (larger ones cannot be real)."""


class CodecError(ValueError):
    """An input a codec cannot encode, or an encoded payload it cannot decode."""


@dataclass
class Encoded:
    """A compressed tensor: named numpy arrays plus small scalars.

    ``arrays`` maps 1:1 onto a Flower ``ArrayRecord`` and is what ``nbytes``
    counts; ``meta`` (shape, scales, counts) maps onto a ``ConfigRecord`` and is
    counted in the serialized Message size, not in the payload bytes.

    Parameters
    ----------
    arrays : dict[str, np.ndarray]
        The payload arrays (any dtype; packed bits travel as ``uint8``).
    meta : dict[str, Scalar | list[int] | list[float]]
        Scalars and short lists needed to decode (e.g. ``shape``).
    """

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class CodecContext:
    """Per-call information a codec may use, owned by the caller.

    Parameters
    ----------
    seed : int
        Seed for any randomness (stochastic rounding); the same seed gives the
        same encoding, so a client can recompute exactly what it sent.
    """

    seed: int = 0

    def generator(self) -> torch.Generator:
        """Return a fresh CPU generator seeded with ``seed``."""
        gen = torch.Generator()
        gen.manual_seed(self.seed)
        return gen


class LazySeedContext(CodecContext):
    """A `CodecContext` whose ``seed`` is computed by ``derive`` when a codec first reads it.

    Deterministic codecs never read it, so an SL step skips the derivation
    (`flwr_split.common.seeds.codec_seed`, about 20 us of NumPy's `SeedSequence`
    per call); a stochastic codec gets the seed ``derive()`` returns.

    Parameters
    ----------
    derive : Callable[[], int]
        Returns the seed; called at most once.
    """

    def __init__(self, derive: Callable[[], int]) -> None:
        self._derive = derive

    @cached_property
    def seed(self) -> int:  # type: ignore[override]
        """The derived seed."""
        return self._derive()


class Codec(ABC):
    """A compressor of cut-layer tensors (activations up, gradients down).

    Subclasses set ``codec_id`` (and ``example_spec``), implement
    ``encode``/``decode`` and list their constructor options in
    ``get_config``. ``from_config(get_config())`` builds
    an identical codec. ``decode`` must validate what it receives (it comes from
    the network) and raise `CodecError` with a clear reason.
    """

    codec_id: ClassVar[str]
    example_spec: ClassVar[str] = ""
    """A typical setting of the codec, the one used where every codec is compared at one
    setting (`simulations.report`, `simulations.bench_codecs`); ``""``: its defaults."""
    signed_example_spec: ClassVar[str] = ""
    """The typical setting for tensors with negative values (gradients; activations after no
    ReLU) when `example_spec` refuses them; ``""`` when `example_spec` takes them."""
    value_sized_arrays: ClassVar[frozenset[str]] = frozenset()
    """Payload arrays whose length depends on the tensor's values, not only its shape. A
    reader that learns a payload's layout from probe tensors
    (`flwr_split.wire.layouts`) caps these by bytes instead of pinning the probes' shape."""

    @abstractmethod
    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Compress a float32 tensor of any shape."""

    @abstractmethod
    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Rebuild a float32 tensor from ``encoded``; raise `CodecError` if malformed."""

    def get_config(self) -> dict[str, Any]:
        """Return the codec's options as plain data, including ``"id"``."""
        return {"id": self.codec_id}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        """Build a codec from ``get_config()`` output."""
        options = {k: v for k, v in config.items() if k != "id"}
        return cls(**options)

    @property
    def accepts_negative(self) -> bool:
        """Whether `encode` accepts negative values; ``False`` for non-negative-only codecs.

        A codec whose domain depends on its options (e.g. ``ms`` with
        ``signed=False``) overrides this per instance.
        """
        return True

    @staticmethod
    def nbytes(encoded: Encoded) -> int:
        """Return the exact bytes of the payload arrays (metadata excluded)."""
        return int(sum(int(a.nbytes) for a in encoded.arrays.values()))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, str(v)) for k, v in self.get_config().items())))

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "id")
        return f"{type(self).__name__}({options})"


def check_float_tensor(tensor: torch.Tensor) -> None:
    """Raise `CodecError` unless ``tensor`` is a floating-point ``torch.Tensor``."""
    if not isinstance(tensor, torch.Tensor):
        raise CodecError(f"expected a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise CodecError(f"expected a floating-point tensor, got {tensor.dtype}")


def all_finite(tensor: torch.Tensor) -> bool:
    """Return True if no value of a float ``tensor`` is NaN or infinite.

    One numpy pass over a CPU tensor (several times faster than
    ``torch.isfinite(t).all()`` on the 10^4-10^5 values of a cut-layer batch);
    torch's own check for what numpy cannot view (bfloat16, other devices).
    """
    if tensor.device.type != "cpu" or tensor.dtype == torch.bfloat16:
        return bool(torch.isfinite(tensor).all())
    return bool(np.isfinite(tensor.detach().numpy()).all())


def check_finite(tensor: torch.Tensor) -> None:
    """Raise `CodecError` unless ``tensor`` is a float tensor of finite values."""
    check_float_tensor(tensor)
    if not all_finite(tensor):
        raise CodecError("tensor holds NaN or inf values; refusing to encode")


def flat_float32(tensor: torch.Tensor) -> np.ndarray:
    """Check ``tensor`` with `check_finite` and return its values as a flat float32 array.

    The result may share memory with ``tensor``: read it, do not write to it.
    Finite input costs one pass over the float32 values; ``tensor`` itself is
    only scanned again to word the error.
    """
    check_float_tensor(tensor)
    flat = tensor.detach().to(torch.float32).cpu().reshape(-1).numpy()
    if not np.isfinite(flat).all():
        check_finite(tensor)
        raise CodecError("tensor values overflow float32; refusing to encode")
    return flat


def require_finite(name: str, array: np.ndarray) -> np.ndarray:
    """Return ``array`` (payload array ``name``) after checking it holds no NaN or inf."""
    if not np.isfinite(array).all():
        raise CodecError(f"array '{name}' holds NaN or inf values")
    return array


def shape_from_meta(encoded: Encoded) -> tuple[int, ...]:
    """Read and validate the ``shape`` entry of ``encoded.meta``."""
    shape = encoded.meta.get("shape")
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise CodecError(f"metadata 'shape' must be a list of non-negative ints, got {shape!r}")
    if any(int(d) > MAX_DIM for d in shape):
        raise CodecError(f"metadata 'shape' {shape!r} has a dimension above {MAX_DIM}")
    return tuple(int(d) for d in shape)


def require_array(
    encoded: Encoded, name: str, dtype: np.dtype | type, size: int | None = None
) -> np.ndarray:
    """Return ``encoded.arrays[name]`` as a flat array, checking dtype and size."""
    if name not in encoded.arrays:
        raise CodecError(f"payload is missing array '{name}'")
    array = np.asarray(encoded.arrays[name])
    if array.dtype != np.dtype(dtype):
        raise CodecError(f"array '{name}' has dtype {array.dtype}, expected {np.dtype(dtype)}")
    flat = array.reshape(-1)
    if size is not None and flat.size != size:
        raise CodecError(f"array '{name}' has {flat.size} elements, expected {size}")
    return flat


def require_scalar(encoded: Encoded, name: str, kind: type) -> Any:
    """Return ``encoded.meta[name]`` checked to be of Python type ``kind``."""
    value = encoded.meta.get(name)
    try:
        value = as_kind(value, kind)
    except TypeError:
        raise CodecError(f"metadata '{name}' must be {kind.__name__}, got {value!r}") from None
    if kind is float and not np.isfinite(value):
        raise CodecError(f"metadata '{name}' must be finite, got {value!r}")
    return value
