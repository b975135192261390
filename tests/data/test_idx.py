"""The IDX reader returns what was written and rejects malformed files with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_split.tasks.data.idx import IDXError, parse_idx, read_idx
from tests.data.idx_files import idx_bytes, write_idx


@pytest.mark.parametrize("dtype", ["u1", "i2", "f4"])
def test_round_trip_of_every_shape_and_type(dtype):
    rng = np.random.default_rng(0)
    for shape in [(7,), (3, 4), (2, 5, 6)]:
        array = (rng.normal(size=shape) * 100).astype(dtype)
        decoded = parse_idx(idx_bytes(array))
        assert decoded.dtype == np.dtype(dtype) and decoded.dtype.isnative
        np.testing.assert_array_equal(decoded, array)


def test_gzip_and_plain_files_are_read(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "a-idx3-ubyte.gz"):
        np.testing.assert_array_equal(read_idx(write_idx(tmp_path / name, idx_bytes(array))), array)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "magic number"),
        (b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x05", "magic number"),
        (b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x05", "unknown IDX value type 0x07"),
        (b"\x00\x00\x08\x00", "at least one dimension"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "header truncated"),
    ],
)
def test_bad_headers_are_rejected(raw, reason):
    with pytest.raises(IDXError, match=reason):
        parse_idx(raw)


def test_truncated_data_and_trailing_bytes_are_rejected():
    raw = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    with pytest.raises(IDXError, match="needs 3136 bytes after the header, found 3135"):
        parse_idx(raw[:-1])
    with pytest.raises(IDXError, match="found 3137"):
        parse_idx(raw + b"\x00")


def test_a_huge_declared_size_is_rejected_without_allocating():
    raw = b"\x00\x00\x0e\x03" + np.asarray([2**32 - 1] * 3, dtype=">u4").tobytes()
    with pytest.raises(IDXError, match=f"needs {(2**32 - 1) ** 3 * 8} bytes"):
        parse_idx(raw)


def test_a_broken_gzip_file_is_an_idx_error(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(IDXError, match="not a valid gzip file"):
        read_idx(path)
