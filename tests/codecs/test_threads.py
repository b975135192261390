"""Codec passes on torch's threads (`flwr_split.codecs.threads`): same bytes at any thread count."""

import multiprocessing
import os

import numpy as np
import pytest
import torch

from flwr_split.codecs import (
    CodecContext,
    bitpack,
    get_codec,
    maskscan,
    ms,
    selection,
    slfac_passes,
    threads,
)

SPECS = [
    *(f"ms:ratio=0.99,bits={bits}" for bits in range(1, 9)),
    *(f"ms:ratio=0.9,bits={bits},signed=true" for bits in (1, 2, 3, 7)),
    "ms:ratio=0.5,bits=2,rounding=floor",
    "ms:ratio=0.99,bits=2,scope=sample",
    "topk:ratio=0.99",
    "topk:ratio=0.9",
    "quant:bits=2",
    "quant:bits=4",
    "splitfc:keep=0.5,bits=4",
]


@pytest.fixture
def torch_threads():
    """Restore torch's thread count after the test."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _round_trip(spec: str, tensor: torch.Tensor) -> tuple[dict, dict[str, bytes], bytes]:
    codec = get_codec(spec)
    encoded = codec.encode(tensor, CodecContext(3))
    arrays = {
        key: array.dtype.str.encode() + array.tobytes() for key, array in encoded.arrays.items()
    }
    return encoded.meta, arrays, codec.decode(encoded, CodecContext(3)).numpy().tobytes()


def _tensor(shape: tuple[int, ...], signed: bool, seed: int = 0) -> torch.Tensor:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    x[..., ::7] = 1.5  # ties, also at the cut-off
    return x if signed else x.relu()


@pytest.mark.parametrize("spec", SPECS)
@pytest.mark.parametrize("shape", [(3, 7, 53), (2, 8, 64), (1, 1001)])
def test_small_spans_and_chunks_give_the_one_thread_bytes(spec, shape, torch_threads, monkeypatch):
    """Spans of a few values on 2 and 3 threads, tiny chunks and blocks: the same bytes."""
    tensor = _tensor(shape, signed="signed=true" in spec)
    torch_threads(1)
    expected = _round_trip(spec, tensor)
    monkeypatch.setattr(threads, "MIN_SHARE", 1)
    monkeypatch.setattr(ms, "CHUNK", 24)
    monkeypatch.setattr(maskscan, "BYTES", 16)
    monkeypatch.setattr(bitpack, "WORD_BLOCK", 16)
    monkeypatch.setattr(selection, "SCAN", 40)
    monkeypatch.setattr(selection, "SAMPLED", 16)
    for count in (1, 2, 3):
        torch_threads(count)
        assert _round_trip(spec, tensor) == expected


@pytest.mark.parametrize(
    "spec", ["ms:ratio=0.99,bits=2", "ms:ratio=0.99,bits=3", "topk:ratio=0.99"]
)
def test_a_large_tensor_gives_the_same_bytes_on_one_and_two_threads(spec, torch_threads):
    """2**20 + 3 values: two spans per pass on two threads."""
    tensor = _tensor((2**20 + 3,), signed=False, seed=1)
    results = []
    for count in (1, 2):
        torch_threads(count)
        results.append(_round_trip(spec, tensor))
    assert results[0] == results[1]


@pytest.mark.parametrize(
    "spec", ["slfac:theta=0.9,bmin=1,bmax=7", "slfac:theta=0.95,cutoff_scope=tensor,bmin=2,bmax=24"]
)
def test_slfac_kernels_give_the_one_thread_bytes_on_two_and_three_threads(
    spec, torch_threads, monkeypatch
):
    """Channel chunks, one per thread (tests/conftest.py runs the other tests on one thread)."""
    pytest.importorskip("numba")
    monkeypatch.setattr(slfac_passes, "MIN_VALUES", 1)
    tensor = _tensor((24, 8, 16, 16), signed=False, seed=2)
    results = []
    for count in (1, 2, 3):
        torch_threads(count)
        results.append(_round_trip(spec, tensor))
    assert results[0] == results[1] == results[2]


def test_spans_cover_the_range_once_on_unit_boundaries(torch_threads):
    torch_threads(3)
    for count, unit in [(0, 8), (5, 8), (3 * threads.MIN_SHARE + 5, 8), (2**24, 2**17)]:
        cuts = threads.spans(count, unit)
        assert [start for start, _ in cuts[1:]] == [stop for _, stop in cuts[:-1]]
        assert (cuts[0][0], cuts[-1][1]) == (0, count) if count else cuts == []
        assert all(start % unit == 0 and stop > start for start, stop in cuts)
        assert len(cuts) == max(min(1, count), min(3, count // threads.MIN_SHARE))


def test_a_forked_child_runs_spans_on_threads_of_its_own(torch_threads):
    """The parent's pool threads do not survive a fork: the child must start its own."""
    torch_threads(2)
    table = np.arange(4, dtype=np.float32)
    indices = np.arange(4 * threads.MIN_SHARE, dtype=np.uint8) % 4
    expected = bitpack.lookup(table, indices)  # the parent's pool exists now
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_lookup_in_child, args=(table, indices, expected))
    child.start()
    child.join(timeout=30)
    if child.is_alive():  # hung, waiting for the parent's threads
        child.kill()
        child.join()
    assert child.exitcode == 0


def _lookup_in_child(table: np.ndarray, indices: np.ndarray, expected: np.ndarray) -> None:
    os._exit(0 if np.array_equal(bitpack.lookup(table, indices), expected) else 1)
