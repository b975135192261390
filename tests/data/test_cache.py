"""Cached arrays are made once, read back unchanged, and written atomically."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_split.tasks.data.cache import DATA_DIR_ENV, cache_dir, cached_arrays


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv(DATA_DIR_ENV)
    assert cache_dir().parts[-2:] == (".cache", "flwr-split")


def test_arrays_are_made_once_and_then_read_from_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "cache"))
    made = []

    def make():
        made.append(True)
        return {"x": np.arange(6, dtype=np.uint8).reshape(2, 3), "y": np.array([1, 2])}

    first = cached_arrays("a.npz", make)
    second = cached_arrays("a.npz", make)
    assert made == [True]
    assert first.keys() == second.keys() == {"x", "y"}
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
        assert first[key].dtype == second[key].dtype
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a.npz"]


def test_a_failed_make_or_write_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))

    def broken():
        raise RuntimeError("no data")

    with pytest.raises(RuntimeError):
        cached_arrays("b.npz", broken)
    with pytest.raises(ValueError):  # object arrays cannot be saved without pickling
        cached_arrays("c.npz", lambda: {"x": np.array([object()])})
    assert list(tmp_path.iterdir()) == []
