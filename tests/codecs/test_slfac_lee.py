"""Lee's 32-point DCT (`slfac_lee`): error against the exact DCT, codelets, pinned payloads."""

import math

import numpy as np
import pytest
import torch

from flwr_split.codecs import CodecContext, get_codec, slfac_lee, slfac_passes
from flwr_split.codecs.dct import band_layout, dct_matrix, storage_order
from tests.helpers import digest

ERROR_BOUND = 2.0**-21
"""Largest error of a coefficient (or of a value after the round trip), times the plane's L2
norm: the bound stated in docs/slfac.md (measured: about 1e-7 against MKL's 1.7e-7)."""

PINNED = {
    "slfac": ("30f6caca3137288e", "da46c0a59910f9cf"),
    "slfac:theta=1.0,bmin=2,bmax=8": ("d768aef6290041b2", "cc6c6453341181b9"),
}
"""spec -> digest of (payload arrays by name, decoded tensor) for each of `PINNED_SHAPES`."""
PINNED_SHAPES = ((8, 8, 32, 32), (2, 3, 32, 32))
"""The compiled path where numba is installed (65,536 values), and always the numpy path."""


def _planes(seed: int) -> np.ndarray:
    """Planes that stress a fast DCT: noise, smooth ramps, basis functions, extreme scales."""
    rng = np.random.default_rng(seed)
    planes = rng.standard_normal((48, 32, 32))
    planes[8:16] = np.cumsum(planes[8:16], axis=-1)
    basis = dct_matrix(32).double().numpy()
    for k in range(16, 32):
        planes[k] = np.outer(basis[rng.integers(32)], basis[rng.integers(32)])
    planes[32:40] *= 1e30
    planes[40:48] *= 1e-30
    return planes.astype(np.float32)


def _relative_error(got: np.ndarray, exact: np.ndarray, planes: np.ndarray) -> float:
    norms = np.linalg.norm(planes.astype(np.float64).reshape(len(planes), -1), axis=1)
    return float((np.abs(got - exact).reshape(len(planes), -1).max(1) / norms).max())


@pytest.mark.parametrize("seed", range(3))
def test_coefficients_and_round_trip_are_within_the_bound_of_the_exact_dct(seed):
    planes = _planes(seed)
    basis = dct_matrix(32).double().numpy()
    exact = np.einsum("uh,phw,vw->pvu", basis, planes.astype(np.float64), basis)  # transposed
    coeffs = slfac_lee.forward_planes(planes)
    assert _relative_error(coeffs, exact, planes) <= ERROR_BOUND
    assert _relative_error(slfac_lee.inverse_planes(coeffs), planes, planes) <= ERROR_BOUND
    assert _relative_error(slfac_lee.inverse_planes(exact.astype(np.float32)), planes, planes) <= (
        ERROR_BOUND
    )


def test_storage_order_maps_band_positions_to_transposed_planes():
    perm, rank = storage_order(32, 32)
    assert np.array_equal(rank[perm], np.arange(32 * 32))
    planes = _planes(0)[:2]
    coeffs = slfac_lee.forward_planes(planes).reshape(2, -1)
    basis = dct_matrix(32).double().numpy()
    natural = np.einsum("uh,phw,vw->puv", basis, planes.astype(np.float64), basis).reshape(2, -1)
    in_band_order = natural[:, band_layout(32, 32)[0].numpy()]
    np.testing.assert_allclose(coeffs[:, perm], in_band_order, rtol=0, atol=1e-5)


def test_committed_codelets_are_the_generated_ones():
    for direction in slfac_lee.CODELETS:
        assert slfac_lee.codelet_path(direction).read_text() == slfac_lee.codelet_source(
            direction
        ), "run python -m flwr_split.codecs.slfac_lee"


def _dag_gain(direction: str) -> float:
    """Largest L1 norm over the codelet's values of its row (its gain over the inputs)."""

    class Basis:
        def __getitem__(self, index: int) -> np.ndarray:
            return np.eye(32)[index // 32]

    namespace = {"F": slfac_lee.CONSTANTS.astype(np.float64), "a": Basis(), "i": 0}
    gain = 0.0
    lines = slfac_lee.codelet_source(direction).split("for i in range(32):\n")[1].splitlines()
    for line in (text.strip() for text in lines if text.strip()):
        target, expression = line.split(" = ")
        row = eval(expression, namespace)  # noqa: S307 - the generated codelet's own lines
        namespace[target] = row
        gain = max(gain, float(np.abs(row).sum()))
    return gain


def test_inverse_intermediates_stay_within_the_products_bound():
    """`dct.finite_planes` skips its scan below ``sqrt(H W)`` times the largest input."""
    gain = _dag_gain("inverse")
    assert gain <= math.sqrt(32)  # every value of one pass, outputs included
    assert gain * gain <= 32  # the second pass reads the first one's outputs


@pytest.mark.parametrize("spec", list(PINNED))
def test_payload_and_decoded_bytes_at_32x32_are_pinned(spec):
    codec = get_codec(spec)
    for shape, expected in zip(PINNED_SHAPES, PINNED[spec], strict=True):
        generator = torch.Generator().manual_seed(7)
        x = torch.randn(shape, generator=generator).relu()
        x += 0.2 * torch.randn(x.shape, generator=generator)
        encoded = codec.encode(x.abs(), CodecContext(3))
        decoded = codec.decode(encoded, CodecContext(3))
        arrays = [encoded.arrays[name] for name in sorted(encoded.arrays)]
        assert digest(*arrays, decoded.numpy()) == expected, shape


class TestCompiled:
    """The numba codelets and kernels against the numpy stages (the ``fast`` extra)."""

    @pytest.fixture(autouse=True)
    def _numba(self):
        pytest.importorskip("numba")

    def test_codelets_give_the_numpy_stages_bit_for_bit(self):
        from flwr_split.codecs.slfac_lee_forward import forward
        from flwr_split.codecs.slfac_lee_inverse import inverse

        planes = _planes(1)
        for codelet, stages in (
            (forward, slfac_lee.forward_rows),
            (inverse, slfac_lee.inverse_rows),
        ):
            out = np.empty_like(planes)
            for plane, target in zip(planes, out, strict=True):
                codelet(plane.reshape(-1), target.reshape(-1))
            assert out.tobytes() == stages(planes).tobytes()

    @pytest.mark.parametrize("spec", ["slfac:theta=1.0,bmin=2,bmax=8", "slfac:theta=0.9"])
    def test_one_and_two_threads_give_the_same_bytes(self, spec, monkeypatch):
        x = torch.randn(5, 7, 32, 32, generator=torch.Generator().manual_seed(2)).relu()
        monkeypatch.setattr(slfac_passes, "MIN_VALUES", 1)
        codec, before, results = get_codec(spec), torch.get_num_threads(), []
        try:
            for count in (1, 2):
                torch.set_num_threads(count)
                encoded = codec.encode(x, CodecContext(3))
                decoded = codec.decode(encoded, CodecContext(3))
                results.append((digest(*encoded.arrays.values()), decoded.numpy().tobytes()))
        finally:
            torch.set_num_threads(before)
        assert results[0] == results[1]
