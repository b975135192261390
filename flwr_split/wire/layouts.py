"""What an encoded tensor of a known shape must look like on the wire, for any codec.

The reader knows the codec (from the session config) and the tensor's exact
shape (from the step order), so it knows the payload before it arrives: which
arrays, of which dtypes and shapes, and which metadata keys of which types.
`payload_layout` learns that once per ``(codec, shape)`` by encoding a few probe
tensors of that shape (the codec's own code, so the layout is right for every
registered codec and plug-in without per-codec tables), and `check_payload`
refuses anything else before the codec's ``decode`` sees it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from flwr_split.codecs import Codec, CodecContext, Encoded
from flwr_split.wire.arrays import ArraySpec, check_spec
from flwr_split.wire.contract import ProtocolError

PROBES = 4
"""Probe tensors per layout: zeros, normal, uniform in [0, 100), cubed normal."""
SLACK_BYTES = 1024
"""Added to the byte cap of an array whose length varies with the data."""
MAX_PROBE_BYTES = 64 * 2**20
"""Largest float32 tensor probed (64 MiB); a larger one gets no layout, only the reply cap."""


@dataclass(frozen=True)
class PayloadLayout:
    """The payload arrays and metadata a codec produces for one tensor shape.

    Parameters
    ----------
    arrays : dict[str, ArraySpec]
        Spec of each array name the codec may send.
    required : frozenset[str]
        Array names every probe produced.
    meta : dict[str, frozenset[type]]
        Types of each metadata value the probes had, as JSON gives them back.
    required_meta : frozenset[str]
        Metadata keys every probe had.
    max_bytes : int
        Cap on the payload's total array bytes.
    """

    arrays: dict[str, ArraySpec]
    required: frozenset[str]
    meta: dict[str, frozenset[type]]
    required_meta: frozenset[str]
    max_bytes: int


def probe_tensors(shape: tuple[int, ...], non_negative: bool) -> list[torch.Tensor]:
    """Return the `PROBES` tensors a layout is learned from (fixed seeds)."""
    gen = torch.Generator().manual_seed(0)
    tensors = [
        torch.zeros(shape),
        torch.randn(shape, generator=gen),
        torch.rand(shape, generator=gen) * 100,
        torch.randn(shape, generator=gen) ** 3,
    ]
    return [t.abs() for t in tensors] if non_negative else tensors


@lru_cache(maxsize=128)
def payload_layout(codec: Codec, shape: tuple[int, ...]) -> PayloadLayout | None:
    """Return the layout of ``codec``'s payloads for tensors of ``shape``.

    None if the tensor is over `MAX_PROBE_BYTES` or the codec cannot encode
    it (then only the reply cap and the codec's own ``decode`` checks apply).
    The global torch and NumPy random states are restored afterwards, so
    probing changes no run's numbers.
    """
    dense_bytes = 4 * math.prod(shape)
    if dense_bytes > MAX_PROBE_BYTES:
        return None
    numpy_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            tensors = probe_tensors(shape, not codec.accepts_negative)
            probes = [codec.encode(t, CodecContext(seed=i)) for i, t in enumerate(tensors)]
    except Exception:  # noqa: BLE001 - a codec that cannot encode this shape has no layout
        return None
    finally:
        np.random.set_state(numpy_state)
    return layout_of(probes, dense_bytes, codec.value_sized_arrays)


def layout_of(
    probes: list[Encoded], dense_bytes: int, value_sized: frozenset[str] = frozenset()
) -> PayloadLayout:
    """Combine the probes' payloads into a layout; ``dense_bytes`` is the float32 size.

    An array is pinned to one shape when every probe sent it with that shape,
    unless it is named in ``value_sized`` (`Codec.value_sized_arrays`): then,
    like an array whose shape varied between the probes, only its dtype, number
    of dimensions and a byte cap are checked.
    """
    names = {name for probe in probes for name in probe.arrays}
    arrays = {}
    for name in sorted(names):
        seen = [np.asarray(p.arrays[name]) for p in probes if name in p.arrays]
        dtypes = {a.dtype.name for a in seen}
        dtype = dtypes.pop() if len(dtypes) == 1 else None
        pinned = name not in value_sized and len(seen) == len(probes)
        if pinned and len({a.shape for a in seen}) == 1:
            arrays[name] = ArraySpec(dtype, seen[0].shape, max_bytes=seen[0].nbytes)
        else:
            largest = max(a.nbytes for a in seen)
            ndims = {a.ndim for a in seen}
            arrays[name] = ArraySpec(
                dtype,
                max_bytes=max(4 * largest, dense_bytes) + SLACK_BYTES,
                ndim=ndims.pop() if len(ndims) == 1 else None,
            )
    metas = [json.loads(json.dumps(p.meta)) for p in probes]
    meta_types: dict[str, set[type]] = {}
    for meta in metas:
        for key, value in meta.items():
            meta_types.setdefault(key, set()).add(type(value))
    return PayloadLayout(
        arrays,
        required=frozenset.intersection(*(frozenset(p.arrays) for p in probes)),
        meta={k: frozenset(v) for k, v in meta_types.items()},
        required_meta=frozenset.intersection(*(frozenset(m) for m in metas)),
        max_bytes=sum(spec.max_bytes or 0 for spec in arrays.values()),
    )


def check_payload(encoded: Encoded, layout: PayloadLayout, what: str) -> None:
    """Raise `ProtocolError` unless ``encoded`` has the arrays and metadata of ``layout``."""
    names = set(encoded.arrays)
    if not layout.required <= names <= set(layout.arrays):
        raise ProtocolError(
            f"{what} payload arrays {sorted(names)[:8]} != expected {sorted(layout.arrays)}"
        )
    for name, values in encoded.arrays.items():
        try:
            check_spec(values.dtype, values.shape, layout.arrays[name])
        except ProtocolError as exc:
            raise ProtocolError(f"{what} payload array '{name}': {exc}") from exc
    keys = set(encoded.meta)
    if not layout.required_meta <= keys <= set(layout.meta):
        raise ProtocolError(
            f"{what} metadata keys {sorted(keys)[:8]} != expected {sorted(layout.meta)}"
        )
    for key, value in encoded.meta.items():
        kinds = layout.meta[key]
        if not (type(value) in kinds or (float in kinds and type(value) is int)):
            raise ProtocolError(f"{what} metadata '{key}' has an unexpected type")
