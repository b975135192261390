"""SL-FAC codec (arXiv 2604.07316): per-channel DCT, energy cutoff, bits by energy density."""

from __future__ import annotations

import math

import numpy as np
import torch

from flwr_split.codecs.base import (
    Codec,
    CodecContext,
    CodecError,
    Encoded,
    all_finite,
    check_finite,
    check_float_tensor,
    flat_float32,
    require_array,
    require_finite,
    shape_from_meta,
)
from flwr_split.codecs.blocks import decoding_table, lookup, quantize_blocks
from flwr_split.codecs.dct import (
    Coefficients,
    band_layout,
    channel_bands,
    finite_planes,
    planes_from_channel_bands,
)
from flwr_split.codecs.registry import register_codec
from flwr_split.codecs.segments import pack_segments, segments_nbytes, unpack_segments
from flwr_split.codecs.slfac_layout import ComponentLayout, Quantized
from flwr_split.codecs.slfac_passes import Compiled, band_statistics, kernels_for, sent_parts

MAX_BITS = 24
"""Widest code: a float32 coefficient carries 24 significant bits."""

MAX_SIDE = 4096
"""Longest transformed axis (the DCT matrix of a side has ``side**2`` entries)."""

ALLOCS = ("log_density", "two_level", "rd_log")
SCOPES = ("channel", "tensor")


def planes_shape(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Return the ``(B, C, H, W)`` view SL-FAC transforms for a tensor of ``shape``.

    ``(B, C, H, W)`` is used as is (2-D DCT per channel); ``(B, C, L)`` (1-D
    conv activations) becomes ``(B, C, 1, L)`` and ``(B, D)`` becomes
    ``(B, 1, 1, D)`` (1-D DCT along the last axis); ``(D,)`` is one sample and
    a scalar one coefficient. Axes before the last three fold into ``B``.
    """
    if len(shape) <= 2:
        padded = (1,) * (2 - len(shape)) + tuple(shape)
        return padded[0], 1, 1, padded[1]
    if len(shape) == 3:
        return shape[0], shape[1], 1, shape[2]
    return math.prod(shape[:-3]), shape[-3], shape[-2], shape[-1]


@register_codec
class SLFAC(Codec):
    """SL-FAC: frequency-aware compression of smashed data (Lin et al., arXiv 2604.07316).

    AFD: each ``H x W`` plane of a ``(B, C, H, W)`` tensor gets an orthonormal
    2-D DCT-II (see `planes_shape` for other ranks: a 1-D DCT along the last
    axis). Diagonal bands ``r = u + v`` are ordered from DC; for each channel,
    band energies are pooled over the batch and the cutoff ``r*`` is the first
    band at which the cumulative energy reaches ``theta`` of the channel's.
    Bands ``<= r*`` form the low component ``L_c``, the rest ``H_c``.

    FQC: each non-empty component ``g`` (``n_g`` coefficients, energy ``E_g``,
    density ``rho_g = E_g / n_g``) gets a width in ``[bmin, bmax]``:

    - ``"log_density"``: ``s_g = ln(1 + rho_g / rho_mean)`` mapped linearly
      from ``[min s, max s]`` onto ``[bmin, bmax]`` and rounded half to even
      (all ``bmax`` when the scores are equal);
    - ``"two_level"``: ``bmax`` for every ``L_c``, ``bmin`` for every ``H_c``;
    - ``"rd_log"``: ``round(mean_bits + log2(rho_g / GM(rho)) / 2)`` clipped,
      ``GM`` the geometric mean of the positive densities (``bmin`` at zero).

    With ``hf_drop`` every ``H_c`` gets 0 bits and decodes to zeros. A
    component is then min-max quantized (`flwr_split.codecs.minmax`) in float64,
    rounding half to even or, if ``stochastic``, unbiased with noise from
    ``ctx.generator()``. Decoding scatters the dequantized coefficients back
    and applies the inverse DCT.

    Payload (little-endian; ``shape`` travels in ``meta``, which replaces the
    spec's 16-byte header):

    - ``cutoffs``: ``uint16``, ``r*`` per channel (one value in tensor scope);
    - ``bits``: ``uint8``, one width per non-empty component, in the order
      ``L_0, H_0, L_1, H_1, ...``;
    - ``ranges``: ``float32``, ``[min, max]`` of each component with bits > 0;
    - ``codes``: ``uint8``, each sent component's codes (samples ascending,
      then positions by ``(u + v, u)``) packed LSB-first at its width, padded to
      a whole byte.

    So ``nbytes = 2C + #non-empty + sum_{b_g > 0} (8 + ceil(n_g b_g / 8))``
    (spec section 3 minus its 16-byte header). With ``passthrough`` the
    payload is the raw ``float32`` ``values`` and decoding is exact.

    Parameters
    ----------
    theta : float, default 0.9
        Energy fraction the low component keeps, in ``(0, 1]``.
    bmin, bmax : int, default 2, 8
        Width range, ``1 <= bmin <= bmax <= 24``.
    alloc : {"log_density", "two_level", "rd_log"}, default "log_density"
        Bit allocation rule.
    mean_bits : float, default 4.0
        Target mean width of ``"rd_log"``, in ``[1, 24]`` (widths are still
        clipped to ``[bmin, bmax]``).
    hf_drop : bool, default False
        Send no high-frequency component (decoded as zeros).
    stochastic : bool, default False
        Stochastic rounding instead of round-half-to-even.
    cutoff_scope : {"channel", "tensor"}, default "channel"
        One cutoff per channel, or one for the whole tensor.
    passthrough : bool, default False
        Send float32 values unchanged (no compression).

    Raises
    ------
    CodecError
        If an option is out of range or of the wrong type.
    """

    codec_id = "slfac"
    example_spec = "slfac:theta=0.9,bmin=2,bmax=8"
    value_sized_arrays = frozenset({"bits", "ranges", "codes"})  # empty components send none

    def __init__(
        self,
        theta: float = 0.9,
        bmin: int = 2,
        bmax: int = 8,
        alloc: str = "log_density",
        mean_bits: float = 4.0,
        hf_drop: bool = False,
        stochastic: bool = False,
        cutoff_scope: str = "channel",
        passthrough: bool = False,
    ) -> None:
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not 0 < theta <= 1:
            raise CodecError(f"slfac theta must be a number in (0, 1], got {theta!r}")
        for name, value in (("bmin", bmin), ("bmax", bmax)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BITS:
                raise CodecError(f"slfac {name} must be an int in 1..{MAX_BITS}, got {value!r}")
        if bmin > bmax:
            raise CodecError(f"slfac bmin ({bmin}) must not exceed bmax ({bmax})")
        if alloc not in ALLOCS:
            raise CodecError(f"slfac alloc must be one of {ALLOCS}, got {alloc!r}")
        if (
            isinstance(mean_bits, bool)
            or not isinstance(mean_bits, (int, float))
            or not 1 <= mean_bits <= MAX_BITS
        ):
            raise CodecError(
                f"slfac mean_bits must be a number in [1, {MAX_BITS}], got {mean_bits!r}"
            )
        if cutoff_scope not in SCOPES:
            raise CodecError(f"slfac cutoff_scope must be one of {SCOPES}, got {cutoff_scope!r}")
        for name, value in (
            ("hf_drop", hf_drop),
            ("stochastic", stochastic),
            ("passthrough", passthrough),
        ):
            if not isinstance(value, bool):
                raise CodecError(f"slfac {name} must be a bool, got {value!r}")
        self.theta = float(theta)
        self.bmin = bmin
        self.bmax = bmax
        self.alloc = alloc
        self.mean_bits = float(mean_bits)
        self.hf_drop = hf_drop
        self.stochastic = stochastic
        self.cutoff_scope = cutoff_scope
        self.passthrough = passthrough

    def get_config(self) -> dict[str, float | int | str | bool]:
        """Return the id and every constructor option."""
        return {
            "id": self.codec_id,
            "theta": self.theta,
            "bmin": self.bmin,
            "bmax": self.bmax,
            "alloc": self.alloc,
            "mean_bits": self.mean_bits,
            "hf_drop": self.hf_drop,
            "stochastic": self.stochastic,
            "cutoff_scope": self.cutoff_scope,
            "passthrough": self.passthrough,
        }

    # ------------------------------------------------------------------ encoder
    def encode(self, tensor: torch.Tensor, ctx: CodecContext | None = None) -> Encoded:
        """Compress ``tensor``; ``ctx.seed`` drives stochastic rounding (seed 0 if None)."""
        if self.passthrough:
            values = flat_float32(tensor).copy()
            return Encoded({"values": values}, {"shape": list(tensor.shape)})
        check_float_tensor(tensor)
        fast = None if self.stochastic else kernels_for(tensor.numel())
        if fast is not None:
            shape, cutoffs, bits, lo, hi, coeffs, layout = self._analyse(tensor, fast)
            packed = fast.pack_components(coeffs, layout, bits, lo, hi)
            counts = layout.counts
        else:
            quantized = self.quantize(tensor, ctx or CodecContext())
            shape, cutoffs = quantized.shape, quantized.cutoffs.numpy()
            bits, lo, hi = quantized.bits.numpy(), quantized.lo.numpy(), quantized.hi.numpy()
            counts = self._counts_for(shape, cutoffs)
            sent = bits > 0
            packed = pack_segments(quantized.codes.numpy(), bits[sent], counts[sent])
        sent = bits > 0
        arrays = {
            "cutoffs": cutoffs.astype(np.uint16),
            "bits": bits[counts > 0].astype(np.uint8),
            "ranges": np.stack([lo[sent], hi[sent]], 1).reshape(-1).astype(np.float32),
            "codes": packed,
        }
        return Encoded(arrays, {"shape": list(shape)})

    def quantize(self, tensor: torch.Tensor, ctx: CodecContext) -> Quantized:
        """Run AFD and FQC on ``tensor``; return what `encode` serializes."""
        check_float_tensor(tensor)
        shape = tuple(tensor.shape)
        batch, channels, height, width = planes_shape(shape)
        _check_sides(height, width)
        if math.prod(shape) == 0:
            count = channels if self.cutoff_scope == "channel" else 1
            none = torch.zeros(2 * channels, dtype=torch.int64)
            cutoffs, codes = torch.zeros(count, dtype=torch.int64), none[:0]
            return Quantized(shape, cutoffs, none, none.double(), none.double(), codes)
        shape, cutoffs, bits, lo, hi, coeffs, layout = self._analyse(tensor, None)
        stream, counts = (
            layout.to_wire(coeffs.values.reshape(coeffs.shape), bits > 0),
            layout.counts,
        )
        generator = ctx.generator() if self.stochastic else None
        codes = np.empty(stream.size, self._code_dtype())
        for g, part in sent_parts(counts, bits > 0):
            levels = 2 ** int(bits[g]) - 1
            codes[part] = quantize_blocks(stream[part], lo[g], hi[g], levels, generator, exact=True)
        return Quantized.from_arrays(shape, cutoffs, bits, lo, hi, codes)

    def _analyse(
        self, tensor: torch.Tensor, fast: Compiled | None
    ) -> tuple[tuple[int, ...], *tuple[np.ndarray, ...], Coefficients, ComponentLayout]:
        """AFD and the widths of FQC for a non-empty float ``tensor``.

        Returns ``(shape, cutoffs, bits, lo, hi, coeffs, layout)``: the numpy arrays of
        `Quantized` but the codes, the DCT coefficients (band-ordered and channel-major
        without ``fast``) and the components.
        """
        shape = tuple(tensor.shape)
        batch, channels, height, width = planes_shape(shape)
        _check_sides(height, width)
        x = tensor.detach().to(torch.float32).cpu().reshape(batch, channels, height, width)
        if fast:
            coeffs, (lows, highs, pooled) = fast.analyse(x)
        else:
            coeffs = Coefficients.band_ordered(channel_bands(x))
            lows, highs, pooled = band_statistics(coeffs, None)
        # NaN or inf show in all three
        if not all(np.isfinite(array).all() for array in (lows, highs, pooled)):
            check_finite(tensor)  # names NaN or inf in the input first
            if not all_finite(x):
                raise CodecError("tensor values overflow float32; refusing to encode")
            raise CodecError("DCT coefficients overflow float32; refusing to encode")
        cutoffs = self._cutoffs(pooled, band_layout(height, width)[2].numpy())
        if cutoffs.size and int(cutoffs.max()) > np.iinfo(np.uint16).max:
            raise CodecError("a cutoff band does not fit the uint16 wire field")
        layout = self._layout(shape, cutoffs)
        lo, hi = layout.ranges(lows, highs)
        bits = self._allocate(layout.per_component(pooled), layout.counts)
        return shape, cutoffs, bits, lo, hi, coeffs, layout

    def _cutoffs(self, pooled: np.ndarray, prefix: np.ndarray) -> np.ndarray:
        """First band per channel (or tensor) whose cumulative energy reaches ``theta``.

        ``pooled`` holds the ``(C, P)`` energy of each position over the batch,
        ``prefix`` the positions in bands ``0..r`` (`band_layout`); int64 result.
        """
        energy = np.add.reduceat(pooled, np.concatenate([[0], prefix[:-1]]), axis=1)
        if self.cutoff_scope == "tensor":
            energy = energy.sum(0, keepdims=True)
        cumulative = np.cumsum(energy, 1)
        below = cumulative < self.theta * cumulative[:, -1:]
        return np.minimum(below.sum(1), prefix.size - 1).astype(np.int64)

    def _allocate(self, energy: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Width of each component (0 for empty ones and, with ``hf_drop``, for ``H_c``).

        ``energy`` and ``counts`` are float64 and int64 arrays over the ``2C`` components.
        """
        present = counts > 0
        density = energy / np.maximum(counts, 1)
        bits = np.full(counts.shape, self.bmax, np.int64)
        if self.alloc == "two_level":
            bits[1::2] = self.bmin
        elif self.alloc == "rd_log":
            positive = present & (density > 0)
            if positive.any():
                log_gm = np.log2(density[positive]).mean()
                with np.errstate(divide="ignore"):
                    rd = np.round(self.mean_bits + 0.5 * (np.log2(density) - log_gm))
                bits = np.where(positive, rd, self.bmin).astype(np.int64)
            else:
                bits[:] = round(self.mean_bits)
        elif present.any() and energy.sum() > 0:
            mean = float(energy.sum()) / int(counts.sum())
            score = np.log1p(density / mean)
            s_lo, s_hi = score[present].min(), score[present].max()
            if s_hi - s_lo >= 1e-12:
                scaled = self.bmin + (self.bmax - self.bmin) * (score - s_lo) / (s_hi - s_lo)
                bits = np.round(scaled).astype(np.int64)
        bits = np.clip(bits, self.bmin, self.bmax)
        if self.hf_drop:
            bits[1::2] = 0
        return np.where(present, bits, 0)

    # ------------------------------------------------------------------ decoder
    def decode(self, encoded: Encoded, ctx: CodecContext | None = None) -> torch.Tensor:
        """Parse and check the payload, dequantize, scatter and invert the DCT."""
        shape = shape_from_meta(encoded)
        numel = math.prod(shape)
        if self.passthrough:
            values = require_finite("values", require_array(encoded, "values", np.float32, numel))
            return torch.from_numpy(values.copy()).reshape(shape)
        fast = kernels_for(numel)
        if fast is None:
            return self.reconstruct(self.parse(encoded, shape))
        cutoffs, bits, lo, hi, packed = self._read(encoded, shape)
        layout = self._layout(shape, cutoffs)
        _, _, height, width = planes_shape(shape)
        decoded = fast.decode_planes(packed, layout, (bits, lo, hi), height, width)
        return finite_planes(decoded.reshape(shape), lo, hi, height * width)

    def parse(self, encoded: Encoded, shape: tuple[int, ...]) -> Quantized:
        """Read and validate every payload array of ``encoded`` for a tensor of ``shape``."""
        cutoffs, bits, lo, hi, packed = self._read(encoded, shape)
        sent, counts = bits > 0, self._counts_for(shape, cutoffs)
        codes = unpack_segments(packed, bits[sent], counts[sent], self._code_dtype())
        return Quantized.from_arrays(shape, cutoffs, bits, lo, hi, codes)

    def _read(self, encoded: Encoded, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
        """Validate the payload; return ``cutoffs, bits, lo, hi`` (as in `Quantized`) and codes.

        The codes are the packed ``uint8`` stream, checked for its size only.
        """
        batch, channels, height, width = planes_shape(shape)
        _check_sides(height, width)
        count = channels if self.cutoff_scope == "channel" else 1
        cutoffs = require_array(encoded, "cutoffs", np.uint16, count).astype(np.int64)
        if cutoffs.size and int(cutoffs.max()) > max(height + width - 2, 0):
            raise CodecError(
                f"cutoff band {int(cutoffs.max())} is out of range for a {height}x{width} plane"
            )
        counts = self._counts_for(shape, cutoffs)
        present = counts > 0
        raw_bits = require_array(encoded, "bits", np.uint8, int(present.sum()))
        bits = np.zeros(counts.size, dtype=np.int64)
        bits[present] = raw_bits
        in_range = (bits >= self.bmin) & (bits <= self.bmax)
        if self.hf_drop:
            in_range[1::2] = bits[1::2] == 0
        if not np.all(in_range | ~present):
            raise CodecError(
                f"a bit width is outside [{self.bmin}, {self.bmax}]"
                + (" (or non-zero on a dropped high component)" if self.hf_drop else "")
            )
        sent = bits > 0
        ranges = require_finite(
            "ranges", require_array(encoded, "ranges", np.float32, 2 * int(sent.sum()))
        ).reshape(-1, 2)
        if np.any(ranges[:, 0] > ranges[:, 1]):
            raise CodecError("a component range has min > max")
        packed = require_array(
            encoded, "codes", np.uint8, int(segments_nbytes(bits[sent], counts[sent]).sum())
        )
        lo = np.zeros(counts.size)
        hi = np.zeros(counts.size)
        lo[sent], hi[sent] = ranges[:, 0], ranges[:, 1]
        return cutoffs, bits, lo, hi, packed

    def reconstruct(self, quantized: Quantized) -> torch.Tensor:
        """Dequantize, scatter the coefficients back and apply the inverse DCT."""
        shape = quantized.shape
        if math.prod(shape) == 0:
            return torch.zeros(shape)
        bits, cutoffs = quantized.bits.numpy(), quantized.cutoffs.numpy()
        codes, lo, hi = quantized.codes.numpy(), quantized.lo.tolist(), quantized.hi.tolist()
        stream = np.empty(codes.size, np.float32)
        for g, part in sent_parts(self._counts_for(shape, cutoffs), bits > 0):
            table = decoding_table(lo[g], hi[g], 2 ** int(bits[g]) - 1)
            stream[part] = lookup(table, codes[part])
        return self._planes(shape, cutoffs, quantized, stream)

    def _planes(
        self, shape: tuple[int, ...], cutoffs: np.ndarray, quantized: Quantized, stream: np.ndarray
    ) -> torch.Tensor:
        """Scatter the dequantized wire ``stream`` back and apply the inverse DCT."""
        _, _, height, width = planes_shape(shape)
        coeffs = self._layout(shape, cutoffs).from_wire(stream, quantized.bits.numpy() > 0)
        decoded = planes_from_channel_bands(coeffs, height, width).reshape(shape)
        return finite_planes(decoded, quantized.lo.numpy(), quantized.hi.numpy(), height * width)

    # ------------------------------------------------------------------ layout
    def _code_dtype(self) -> type[np.integer]:
        """Smallest integer type of the codes in the planes: ``uint8`` up to 8 bits."""
        return np.uint8 if self.bmax <= 8 else np.int32

    def _layout(self, shape: tuple[int, ...], cutoffs: np.ndarray) -> ComponentLayout:
        batch, _, height, width = planes_shape(shape)
        return ComponentLayout(batch, self._low_counts(shape, cutoffs), height * width)

    def _low_counts(self, shape: tuple[int, ...], cutoffs: np.ndarray) -> np.ndarray:
        """Low-band positions ``P(r*_c)`` of each channel (int64)."""
        _, channels, height, width = planes_shape(shape)
        if height * width == 0:
            return np.zeros(channels, dtype=np.int64)
        prefix = band_layout(height, width)[2].numpy()
        return np.broadcast_to(prefix[cutoffs], (channels,)).copy()

    def _counts_for(self, shape: tuple[int, ...], cutoffs: np.ndarray) -> np.ndarray:
        """Coefficients per component (``L_0, H_0, ...``)."""
        return self._layout(shape, cutoffs).counts


def _check_sides(height: int, width: int) -> None:
    if max(height, width) > MAX_SIDE:
        raise CodecError(
            f"slfac transforms axes of at most {MAX_SIDE} entries, got {height}x{width}"
        )
