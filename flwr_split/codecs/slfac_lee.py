"""Orthonormal DCT-II of 32 x 32 planes by Lee's fast algorithm, in float32.

SL-FAC transforms ``32 x 32`` planes (the ResNet cut) with Lee's recursive algorithm
(B. G. Lee, "A new algorithm to compute the discrete cosine transform", IEEE Trans. ASSP
32(6), 1984) instead of two 32-point matrix products: 80 multiplications and 209
additions per 32 values instead of 1,024 multiply-adds. Every other plane size keeps the
products of `flwr_split.codecs.dct`.

One 32-point pass, along the rows axis of a ``(..., 32, columns)`` array: split stages at
block sizes ``m = 32, 16, ..., 2`` (``g[k] = x[k] + x[m-1-k]``, ``h[k] = (x[k] - x[m-1-k]) *
c_m[k]`` with ``c_m[k] = 1 / (2 cos(pi (2k + 1) / (2m)))``), merge stages at ``m = 2, ...,
32`` (``X[2k] = G[k]``, ``X[2k+1] = H[k] + H[k+1]``, ``X[m-1] = H[m/2-1]``), then each
output times its orthonormal scale. The inverse pass runs the transposed stages in
reverse order (the scale first). A plane is transformed along its rows, transposed, and
transformed again, so its coefficient ``(u, v)`` is stored at ``v * 32 + u``
(`dct.Coefficients` maps band positions to that layout).

Two implementations compute every value with the same float32 operations on the same
operands, so they agree bit for bit (tested): the numpy stages here (`forward_planes`,
`inverse_planes`: the fallback) and, for the ``fast`` extra, the numba codelets in
`slfac_lee_forward` and `slfac_lee_inverse`: straight-line code over the 32 values of a
column, vectorized across columns. The codelets are generated from the same recursion
(``python -m flwr_split.codecs.slfac_lee`` writes them; a test checks they are current).
Error against the exact DCT: docs/slfac.md ("Lee's algorithm at 32 x 32").
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SIDE = 32
"""Planes of ``SIDE x SIDE`` positions are transformed by Lee's algorithm."""

LEVELS = [SIDE >> level for level in range(SIDE.bit_length() - 1)]
"""Block sizes of the split stages: 32, 16, 8, 4, 2."""


def factor_index(size: int, k: int) -> int:
    """Index in `CONSTANTS` of ``c_size[k]``: the blocks' factors, largest block first."""
    return SIDE - size + k


def scale_index(k: int) -> int:
    """Index in `CONSTANTS` of the orthonormal scale of output ``k``."""
    return SIDE - 1 + min(k, 1)


def _constants() -> np.ndarray:
    factors = [
        1.0 / (2.0 * math.cos(math.pi * (2 * k + 1) / (2 * size)))
        for size in LEVELS
        for k in range(size // 2)
    ]
    return np.array([*factors, math.sqrt(1.0 / SIDE), math.sqrt(2.0 / SIDE)], np.float32)


CONSTANTS = _constants()
"""float32 factors ``c_m[k]`` (`factor_index`) and the two orthonormal scales (`scale_index`)."""


def uses_lee(height: int, width: int) -> bool:
    """Whether ``height x width`` planes are transformed here (else by matrix products)."""
    return height == width == SIDE


def _factors(size: int) -> np.ndarray:
    start = factor_index(size, 0)
    return CONSTANTS[start : start + size // 2, None]


def _scales() -> np.ndarray:
    return CONSTANTS[[scale_index(k) for k in range(SIDE)], None]


def _blocks(x: np.ndarray, size: int) -> np.ndarray:
    return x.reshape(*x.shape[:-2], SIDE // size, size, x.shape[-1])


def forward_rows(x: np.ndarray) -> np.ndarray:
    """Orthonormal DCT-II along axis -2 (32 long) of float32 ``x``; a fresh array."""
    for size in LEVELS:
        half, blocks = size // 2, _blocks(x, size)
        low, high = blocks[..., :half, :], blocks[..., : half - 1 : -1, :]
        out = np.empty_like(blocks)
        np.add(low, high, out=out[..., :half, :])
        np.multiply(np.subtract(low, high), _factors(size), out=out[..., half:, :])
        x = out.reshape(x.shape)
    for size in reversed(LEVELS):
        half, blocks = size // 2, _blocks(x, size)
        out = np.empty_like(blocks)
        out[..., 0::2, :] = blocks[..., :half, :]
        np.add(blocks[..., half:-1, :], blocks[..., half + 1 :, :], out=out[..., 1:-1:2, :])
        out[..., -1, :] = blocks[..., -1, :]
        x = out.reshape(x.shape)
    return x * _scales()


def inverse_rows(x: np.ndarray) -> np.ndarray:
    """Invert `forward_rows` (orthonormal DCT-III along axis -2); a fresh array."""
    x = x * _scales()
    for size in LEVELS:
        half, blocks = size // 2, _blocks(x, size)
        out = np.empty_like(blocks)
        out[..., :half, :] = blocks[..., 0::2, :]
        out[..., half, :] = blocks[..., 1, :]
        np.add(blocks[..., 3::2, :], blocks[..., 1:-2:2, :], out=out[..., half + 1 :, :])
        x = out.reshape(x.shape)
    for size in reversed(LEVELS):
        half, blocks = size // 2, _blocks(x, size)
        product = blocks[..., half:, :] * _factors(size)
        out = np.empty_like(blocks)
        np.add(blocks[..., :half, :], product, out=out[..., :half, :])
        np.subtract(blocks[..., :half, :], product, out=out[..., : half - 1 : -1, :])
        x = out.reshape(x.shape)
    return x


def _transposed(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.swapaxes(x, -1, -2))


def forward_planes(planes: np.ndarray) -> np.ndarray:
    """Return the DCT-II of float32 ``(..., 32, 32)`` planes, each plane transposed (``[v, u]``)."""
    return forward_rows(_transposed(forward_rows(planes)))


def inverse_planes(coeffs: np.ndarray) -> np.ndarray:
    """Invert `forward_planes`: transposed coefficients to ``(..., 32, 32)`` planes."""
    return inverse_rows(_transposed(inverse_rows(coeffs)))


# ---------------------------------------------------------------- codelet source
class _Emitter:
    """Straight-line statements, one fresh name per value."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, expression: str) -> str:
        name = f"t{len(self.lines)}"
        self.lines.append(f"{name} = {expression}")
        return name


def _forward_dag(names: list[str], emit: _Emitter) -> list[str]:
    size = len(names)
    if size == 1:
        return names
    half = size // 2
    pairs = [(names[k], names[size - 1 - k]) for k in range(half)]
    low = [emit(f"{a} + {b}") for a, b in pairs]
    high = [emit(f"({a} - {b}) * F[{factor_index(size, k)}]") for k, (a, b) in enumerate(pairs)]
    even, odd = _forward_dag(low, emit), _forward_dag(high, emit)
    out = []
    for k in range(half):
        out += [even[k], emit(f"{odd[k]} + {odd[k + 1]}") if k < half - 1 else odd[k]]
    return out


def _inverse_dag(names: list[str], emit: _Emitter) -> list[str]:
    size = len(names)
    if size == 1:
        return names
    half = size // 2
    odd_in = [names[1], *(emit(f"{names[2 * k + 1]} + {names[2 * k - 1]}") for k in range(1, half))]
    even, odd = _inverse_dag(names[0::2], emit), _inverse_dag(odd_in, emit)
    out = [""] * size
    for k in range(half):
        product = emit(f"{odd[k]} * F[{factor_index(size, k)}]")
        out[k] = emit(f"{even[k]} + {product}")
        out[size - 1 - k] = emit(f"{even[k]} - {product}")
    return out


CODELETS = {"forward": "forward_rows", "inverse": "inverse_rows"}
"""Codelet module suffix -> the numpy function it repeats."""


def codelet_source(direction: str) -> str:
    """Return the source of module ``slfac_lee_<direction>`` (its numba codelet)."""
    emit = _Emitter()
    loads = [f"a[{SIDE * k} + i]" for k in range(SIDE)]
    if direction == "forward":
        outputs = _forward_dag(loads, emit)
        stores = [f"{name} * F[{scale_index(k)}]" for k, name in enumerate(outputs)]
    else:
        scaled = [emit(f"{load} * F[{scale_index(k)}]") for k, load in enumerate(loads)]
        stores = _inverse_dag(scaled, emit)
    body = emit.lines + [f"b[{SIDE * k} + i] = {value}" for k, value in enumerate(stores)]
    numpy_twin = CODELETS[direction]
    return "\n".join(
        [
            f'"""numba codelet: `slfac_lee.{numpy_twin}` of one 32 x 32 plane.',
            "",
            "Generated by ``python -m flwr_split.codecs.slfac_lee``: do not edit.",
            '"""',
            "",
            "import numpy as np",
            "from numba import njit",
            "",
            "from flwr_split.codecs.slfac_lee import CONSTANTS as F",
            "",
            "",
            "@njit(cache=True, nogil=True)",
            f"def {direction}(a: np.ndarray, b: np.ndarray) -> None:",
            f'    """Write `slfac_lee.{numpy_twin}` of the flat 32 x 32 plane ``a`` into ``b``."""',
            f"    for i in range({SIDE}):",
            *(f"        {line}" for line in body),
            "",
        ]
    )


def codelet_path(direction: str) -> Path:
    """Return the path of the generated module ``slfac_lee_<direction>.py``."""
    return Path(__file__).with_name(f"slfac_lee_{direction}.py")


def main() -> None:
    """Write both codelet modules next to this one."""
    for direction in CODELETS:
        codelet_path(direction).write_text(codelet_source(direction))


if __name__ == "__main__":
    main()
