"""Mask-encoded sparsification codec (arXiv 2408.13787): top-k values plus a b-bit mask."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from flwr_split.codecs.base import (
    Codec,
    CodecContext,
    CodecError,
    Encoded,
    check_float_tensor,
    require_array,
    require_finite,
    require_scalar,
    shape_from_meta,
)
from flwr_split.codecs.bitpack import (
    byte_codes,
    lookup,
    pack_bits,
    pack_into,
    packed_nbytes,
    unpack_codes,
)
from flwr_split.codecs.blocks import lookup_packed
from flwr_split.codecs.maskscan import top_positions
from flwr_split.codecs.registry import register_codec
from flwr_split.codecs.selection import Candidates, finite_flat_candidates, row_top_positions
from flwr_split.codecs.threads import run_all, spans

MAX_BITS = 8
"""Widest magnitude code `MaskSparsification` accepts."""

ROUNDINGS = ("nearest", "floor")
SCOPES = ("batch", "sample")


_EMPTY_UNIT_ERROR = "mask has non-zero codes in a unit whose smallest kept value is 0"
_SIGN_ERROR = "sign bit set on a kept entry or on a zero code"

CHUNK = 2**18
"""Codes of one unit made and packed at a time (a multiple of 8: each fills whole bytes; 1 MiB
of float32 with its codes stays in L3 and takes fewer calls per value than 2**17 or 2**16)."""

EDGE_LEVELS = 7
"""Largest ``L`` for which codes are counted from level edges instead of divided out."""


_Buffers = tuple[np.ndarray, np.ndarray] | None
"""`MaskSparsification._codes`' codes and one comparison's bools (``CHUNK`` or a row long)."""


@dataclass(frozen=True)
class _Coding:
    """What the codes of ``(units, d)`` entries depend on (`MaskSparsification.encode`).

    Magnitudes and values, ``T`` and level edges (`MaskSparsification._edges`) per unit,
    and the ascending flat positions of the kept entries.
    """

    mag: np.ndarray
    signal: np.ndarray
    threshold: np.ndarray
    edges: np.ndarray
    positions: np.ndarray


@register_codec
class MaskSparsification(Codec):
    """Mask-encoded sparsification (MS, Zhou et al., ECAI 2024, arXiv 2408.13787).

    Within each unit (the whole tensor, or one first-axis sample; see
    ``scope``) of ``d`` entries, the ``k = floor((1 - ratio) * d)`` largest
    entries are kept exactly and every entry gets a ``bits``-bit code. With
    ``L = 2**bits - 1`` and ``T`` the smallest kept value, kept entries get the
    all-ones code ``L``; every other entry ``v`` gets
    ``clamp(Q(v * L / T), 0, L - 1)`` (``Q`` per ``rounding``) and decodes to
    ``code * T / L``. ``T`` is not sent: the decoder recovers it as the minimum
    of the kept values. With ``bits=1`` this is plain top-k (dropped entries
    decode to 0). On non-negative input every entry decodes within ``T / L``
    of itself and never farther than top-k at the same ``k`` would put it.

    Payload (``nbytes = 4 * K + ceil(w * numel / 8)``):

    - ``values``: ``float32``, the ``K`` kept entries (``K = k`` for batch
      scope, ``shape[0] * k`` for sample scope) in ascending flat-index order;
    - ``mask``: ``uint8``, one ``w``-bit code per entry in flat order, packed
      little-endian as in `pack_bits`; ``w = bits``, or ``bits + 1`` if
      ``signed``.

    ``meta`` holds ``shape``, ``bits``, ``k`` (kept entries per unit),
    ``scope`` and ``signed``; the decoder rejects a payload whose ``bits``,
    ``scope`` or ``signed`` differ from its own options or whose ``k`` is not
    the one its own ``ratio`` gives (that is how a ratio mismatch shows).

    Decisions beyond the spec (``shared/specs/mask_sparsification.md``):

    - Exactly ``k`` entries are kept; ties at the cut-off go to the lower flat
      position (as the ``topk`` codec), so ``bits=1`` equals ``topk`` exactly.
      Non-kept entries equal to ``T`` get code ``L - 1`` (spec §2.1).
    - Codes are computed in float64 from the float32 inputs: ``v * L`` is
      exact and the quotient by ``T`` is correctly rounded, so ``floor`` is
      exact without an epsilon (the spec's ``1.4 * 3 / 2.1 = 1.999...`` only
      happens with float64 literals; float32 ``1.4`` and ``2.1`` give code 2,
      as Fig. 1 draws). ``nearest`` rounds half to even, like ``torch.round``.
      Decoded levels are ``code * T / L`` in float64, rounded once to float32.
    - ``T <= 0`` (fewer than ``k`` positive entries) or ``k = 0``: all non-kept
      codes are 0. The decoder rejects non-zero non-kept codes in such units.
    - ``scope="sample"``: each slice ``tensor[i]`` is a unit with its own ``k``
      (from ``d = numel / shape[0]``) and ``T``; a 0-d tensor is one unit.
    - ``signed=True`` (spec §2.6, our concrete form): top-k by magnitude,
      ``T = min |kept|``, magnitude codes from ``|v|`` and a sign bit above
      them (``code = magnitude | sign << bits``). The sign bit is set only on
      negative non-kept entries with magnitude code ``1..L-1``; the decoder
      rejects any other set sign bit. Kept values carry their own sign. With
      ``bits=1`` the sign bits are always 0 (use ``topk`` instead).
    - Unsigned payloads with negative ``values`` are rejected.

    Parameters
    ----------
    ratio : float, default 0.99
        Fraction ``r`` of entries dropped, in ``[0, 1)``; ``k`` is computed
        exactly from the shortest decimal form of ``ratio``.
    bits : int, default 2
        Mask width ``b``, 1..8.
    rounding : {"nearest", "floor"}, default "nearest"
        Rounding rule ``Q`` for non-kept entries: the reference code's
        round-to-nearest, or the paper text's floor.
    scope : {"batch", "sample"}, default "batch"
        Unit of top-k selection and of ``T``: the whole tensor, or each slice
        along the first axis.
    signed : bool, default False
        Accept negative input (e.g. gradients) at one extra mask bit per entry.
        Unsigned mode raises `CodecError` on negative input.

    Raises
    ------
    CodecError
        If an option is out of range or of the wrong type.
    """

    codec_id = "ms"
    example_spec = "ms:ratio=0.99,bits=2"
    signed_example_spec = "ms:ratio=0.99,bits=2,signed=true"

    def __init__(
        self,
        ratio: float = 0.99,
        bits: int = 2,
        rounding: str = "nearest",
        scope: str = "batch",
        signed: bool = False,
    ) -> None:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio < 1:
            raise CodecError(f"ms ratio must be a number in [0, 1), got {ratio!r}")
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= MAX_BITS:
            raise CodecError(f"ms bits must be an int in 1..{MAX_BITS}, got {bits!r}")
        if rounding not in ROUNDINGS:
            raise CodecError(f"ms rounding must be one of {ROUNDINGS}, got {rounding!r}")
        if scope not in SCOPES:
            raise CodecError(f"ms scope must be one of {SCOPES}, got {scope!r}")
        if not isinstance(signed, bool):
            raise CodecError(f"ms signed must be a bool, got {signed!r}")
        self.ratio = float(ratio)
        self._kept_share = 1 - Fraction(repr(self.ratio))
        self.bits = bits
        self.rounding = rounding
        self.scope = scope
        self.signed = signed
        self._code_dtype = np.uint8 if self.width <= 8 else np.uint16  # holds a width-bit code
        self._edge_codes = np.arange(1, self.levels, dtype=np.float64)
        offset = 0.5 if rounding == "nearest" else 0.0
        self._edge_shares = (self._edge_codes - offset) / self.levels

    @property
    def levels(self) -> int:
        """Return the all-ones code ``L = 2**bits - 1`` that marks a kept entry."""
        return 2**self.bits - 1

    @property
    def width(self) -> int:
        """Return the bits per mask entry: ``bits``, plus one sign bit if ``signed``."""
        return self.bits + int(self.signed)

    @property
    def accepts_negative(self) -> bool:
        """Return ``signed``: unsigned MS needs non-negative input."""
        return self.signed

    def get_config(self) -> dict[str, float | int | str | bool]:
        """Return ``{"id": "ms", "ratio", "bits", "rounding", "scope", "signed"}``."""
        return {
            "id": self.codec_id,
            "ratio": self.ratio,
            "bits": self.bits,
            "rounding": self.rounding,
            "scope": self.scope,
            "signed": self.signed,
        }

    def keep_count(self, numel: int) -> int:
        """Return ``k = floor((1 - ratio) * numel)``, computed in exact arithmetic."""
        return self._kept_share.numerator * numel // self._kept_share.denominator

    def units(self, shape: tuple[int, ...]) -> tuple[int, int]:
        """Return ``(units, entries per unit)`` for a tensor of ``shape``."""
        if self.scope == "sample" and shape:
            return shape[0], math.prod(shape[1:])
        return 1, math.prod(shape)

    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Keep the top-k entries of each unit and code the others in ``bits`` bits."""
        check_float_tensor(tensor)
        shape = tuple(tensor.shape)
        rows, width = self.units(shape)
        k = self.keep_count(width)
        flat, lowest, _, candidates = finite_flat_candidates(tensor, k if rows == 1 else 0)
        if not self.signed and lowest < 0:
            raise CodecError(
                f"ms with signed=false needs non-negative input (e.g. after a ReLU), got a "
                f"minimum of {lowest:g}; use 'ms:signed=true' for tensors with "
                "negative values such as gradients"
            )
        meta = {
            "shape": list(shape),
            "bits": self.bits,
            "k": k,
            "scope": self.scope,
            "signed": self.signed,
        }
        if flat.size == 0:  # also when shape[0] is huge and a later axis is 0
            return Encoded({"values": flat[:0].copy(), "mask": np.zeros(0, np.uint8)}, meta)
        signal = flat.reshape(rows, width)
        mag = np.abs(signal) if lowest < 0 else signal
        if candidates is not None and lowest < 0:  # ranked by magnitude, as ``mag``
            candidates = Candidates(candidates.positions, np.abs(candidates.values))
        positions, threshold = row_top_positions(mag, k, candidates)
        coding = _Coding(mag, signal, threshold, self._edges(threshold), positions)
        if rows == 1:
            mask = np.empty(packed_nbytes(self.width, flat.size), np.uint8)
            values = np.empty(positions.size, flat.dtype)
            args = coding, mask, values
            run_all([(self._pack_span, *args, *span) for span in spans(flat.size, CHUNK)])
        else:
            mask = pack_bits(self._entry_codes(coding, slice(0, width), positions), self.width)
            values = flat[positions]
        return Encoded({"values": values, "mask": mask}, meta)

    def _pack_span(
        self, coding: _Coding, mask: np.ndarray, values: np.ndarray, start: int, stop: int
    ) -> None:
        """Write the mask bytes and kept values of codes ``start .. stop`` of one unit.

        `CHUNK` codes at a time: each chunk's codes are made and packed, and its kept values
        gathered, while it is in cache, in buffers reused from chunk to chunk. Spans run on
        torch's threads (`threads.run_all`), each writing its own whole bytes of the mask and
        its own kept values.
        """
        cuts = [*range(start, stop, CHUNK), stop]
        found = np.searchsorted(coding.positions, cuts).tolist()
        codes = np.empty((1, min(CHUNK, stop - start)), self._code_dtype)
        above = np.empty(codes.size, bool)
        for first, last, low, high in zip(cuts, cuts[1:], found, found[1:], strict=False):
            kept = coding.positions[low:high] - first
            buffers = codes[:, : last - first], above
            part = self._entry_codes(coding, slice(first, last), kept, buffers)
            values[low:high] = coding.signal[0, first:last][kept]
            out = mask[first * self.width // 8 : packed_nbytes(self.width, last)]
            pack_into(part.reshape(-1), self.width, out)

    def _entry_codes(
        self, coding: _Coding, part: slice, positions: np.ndarray, buffers: _Buffers = None
    ) -> np.ndarray:
        """Return the codes of columns ``part`` of every unit: `_codes`, sign bits, kept ``L``.

        ``positions`` are the kept entries' flat positions in the part's ``(units, columns)``.
        """
        codes = self._codes(coding.mag[:, part], coding.threshold, coding.edges, buffers)
        if self.signed:
            negative = coding.signal[:, part] < 0
            codes |= (negative & (codes > 0)).astype(codes.dtype) << self.bits
        codes.reshape(-1)[positions] = self.levels  # also clears the sign bit of kept entries
        return codes

    def _quantize(self, mag: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """Return ``Q(mag * L / T)`` in float64 (``threshold`` is ``T``, broadcast, positive)."""
        scaled = mag.astype(np.float64) * self.levels / threshold
        return np.rint(scaled) if self.rounding == "nearest" else np.floor(scaled)

    def _codes(
        self, mag: np.ndarray, threshold: np.ndarray, edges: np.ndarray, buffers: _Buffers = None
    ) -> np.ndarray:
        """Return the magnitude code of every entry as if none were kept (0..L-1).

        The dtype is the narrowest that holds a ``width``-bit code. For small
        ``L`` each code counts the level ``edges`` (`_edges` of ``threshold``) at or
        below the entry, which gives the float64 rule's codes without its divisions.
        ``buffers`` (`_Buffers`) receive the codes and one comparison at a time.
        """
        levels = self.levels
        codes, above = buffers or (
            np.empty(mag.shape, self._code_dtype),
            np.empty(min(CHUNK, mag.shape[1]), bool),
        )
        if levels == 1:  # no level edges: every code is 0
            codes[...] = 0
            return codes
        if levels <= EDGE_LEVELS:  # a chunk at a time: the comparisons stay in cache
            for row_codes, row, row_edges in zip(codes, mag, edges, strict=True):
                for first in range(0, row.size, CHUNK):
                    block, part = row[first : first + CHUNK], row_codes[first : first + CHUNK]
                    hit = above[: block.size]
                    np.greater_equal(block, row_edges[0], out=part.view(bool))  # uint8 0 or 1
                    for edge in row_edges[1:]:
                        np.greater_equal(block, edge, out=hit)
                        np.add(part, hit.view(np.uint8), out=part)
            return codes
        positive = threshold[:, None] > 0
        quantized = self._quantize(mag, np.where(positive, threshold[:, None], 1.0))
        np.minimum(quantized, levels - 1, out=quantized, where=positive)
        codes[...] = np.where(positive, quantized, 0)
        return codes

    def _edges(self, threshold: np.ndarray) -> np.ndarray:
        """Return ``(rows, L - 1)`` float32 edges: code ``>= j`` iff the entry is ``>= edge j``.

        Edge ``j`` is the smallest float32 whose float64 code ``Q(v * L / T)`` is
        at least ``j``. The code passes ``j`` within a float64 rounding of the
        real ``e = (j - 1/2) T / L`` (``j T / L`` for floor), far closer than one
        float32 step; the estimate ``g``, ``e`` in float64 rounded to float32, is
        within half a step (and a few float64 roundings) of ``e``. So the edge
        is ``g`` if ``g`` reaches code ``j``, else the next float32 up. Rows with
        ``T <= 0`` get infinite edges (all their codes are 0).
        """
        positive = threshold[:, None] > 0
        scale = np.where(positive, threshold[:, None], 1.0)
        guess = (self._edge_shares * scale).astype(np.float32)
        reached = self._quantize(guess, scale) >= self._edge_codes
        edges = np.where(reached, guess, np.nextafter(guess, np.float32(np.inf)))
        return np.where(positive, edges, np.float32(np.inf))

    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Fill kept values in order and rebuild the others as ``code * T / L``."""
        shape = shape_from_meta(encoded)
        numel = math.prod(shape)
        self._check_options(encoded)
        rows, width = self.units(shape)
        k = require_scalar(encoded, "k", int)
        if k != self.keep_count(width):
            raise CodecError(
                f"payload keeps k={k} entries per unit, but ratio {self.ratio} keeps "
                f"{self.keep_count(width)} of {width}"
            )
        values = require_finite("values", require_array(encoded, "values", np.float32, rows * k))
        if not self.signed and values.size and float(values.min()) < 0:
            raise CodecError("unsigned payload holds negative kept values")
        packed = require_array(encoded, "mask", np.uint8, packed_nbytes(self.width, numel))
        if numel == 0:
            try:
                return torch.zeros(shape)
            except (TypeError, RuntimeError) as exc:
                raise CodecError(f"shape {list(shape)} does not fit a tensor: {exc}") from exc
        kept = values.reshape(rows, k)
        threshold = np.abs(kept).min(axis=1).astype(np.float64) if k else np.zeros(rows)
        table = self._decoded_levels(threshold)
        if rows == 1 and 8 % self.width == 0:  # whole bytes: all their codes at once
            out = lookup_packed(packed, self.width, numel, table[0]).reshape(1, -1)
            positions = self._check_bytes(packed, k, bool(threshold[0] <= 0))
        else:
            codes = unpack_codes(packed, self.width, numel).reshape(rows, width)
            positions = self._check_codes(codes, k, threshold <= 0)
            out = np.take_along_axis(table, codes.astype(np.intp), axis=1)
        out.reshape(-1)[positions] = values
        return torch.from_numpy(out).reshape(shape)

    def _check_codes(self, codes: np.ndarray, k: int, empty: np.ndarray) -> np.ndarray:
        """Return the kept positions of ``(rows, width)`` codes after checking the mask.

        Every unit must have ``k`` all-ones codes, no other non-zero code where ``T <= 0``
        (``empty``) and, signed, no sign bit on a kept or zero code.
        """
        rows, width = codes.shape
        magnitude = codes & self.levels if self.signed else codes
        top = magnitude == self.levels
        positions = np.flatnonzero(top)
        counts = np.bincount(positions // width, minlength=rows)
        bad = np.flatnonzero(counts != k)
        if bad.size:
            raise CodecError(
                f"mask has {int(counts[bad[0]])} all-ones codes in unit {int(bad[0])}, "
                f"expected k={k} (one per kept value)"
            )
        if empty.any() and np.count_nonzero(magnitude[empty]) > np.count_nonzero(top[empty]):
            raise CodecError(_EMPTY_UNIT_ERROR)
        if self.signed:
            sign = 1 << self.bits
            if np.any((codes == sign) | (codes == sign | self.levels)):
                raise CodecError(_SIGN_ERROR)
        return positions

    def _check_bytes(self, packed: np.ndarray, k: int, empty: bool) -> np.ndarray:
        """`_check_codes` of one unit, read from the packed bytes (``8 % width == 0``).

        The kept positions come from `maskscan.top_positions`. Same checks and errors, tested.
        """
        codes = byte_codes(self.width)
        magnitude = codes & self.levels
        positions = top_positions(packed, self.width, self.bits)
        if positions.size != k:
            raise CodecError(
                f"mask has {positions.size} all-ones codes in unit 0, "
                f"expected k={k} (one per kept value)"
            )
        if empty and lookup(np.count_nonzero(magnitude, axis=1), packed).sum() > k:
            raise CodecError(_EMPTY_UNIT_ERROR)
        if self.signed:
            sign = 1 << self.bits
            if lookup(((codes == sign) | (codes == sign | self.levels)).any(axis=1), packed).any():
                raise CodecError(_SIGN_ERROR)
        return positions

    def _decoded_levels(self, threshold: np.ndarray) -> np.ndarray:
        """Return ``(rows, 2**width)`` float32: what each code decodes to (kept codes give ``T``).

        ``code * T / L`` in float64, rounded once to float32, negated if the sign
        bit is set.
        """
        codes = np.arange(2**self.width)
        levels = ((codes & self.levels) * threshold[:, None] / self.levels).astype(np.float32)
        return np.where(codes >> self.bits, -levels, levels) if self.signed else levels

    def _check_options(self, encoded: Encoded) -> None:
        """Raise `CodecError` unless ``bits``, ``scope`` and ``signed`` match this codec."""
        bits = require_scalar(encoded, "bits", int)
        if bits != self.bits:
            raise CodecError(f"payload uses a {bits}-bit mask, this codec uses {self.bits} bits")
        scope = require_scalar(encoded, "scope", str)
        if scope != self.scope:
            raise CodecError(f"payload has scope {scope!r}, this codec uses {self.scope!r}")
        signed = require_scalar(encoded, "signed", bool)
        if signed != self.signed:
            raise CodecError(f"payload has signed={signed}, this codec has signed={self.signed}")
