"""Fashion-MNIST: the IDX files, else flwr-datasets, else one error naming both ways."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_split.tasks.data import fashion_mnist
from flwr_split.tasks.data.cache import DATA_DIR_ENV
from flwr_split.tasks.data.hub import HubUnavailableError
from flwr_split.tasks.data.idx import IDXError
from tests.data.available import fixed_28x28_split, needs_fashion_mnist
from tests.data.idx_files import idx_bytes, write_idx
from tests.data.standin import isolated_hub, pixel, write_image_standin


@needs_fashion_mnist
def test_the_split_is_the_original_60k_and_10k_uint8_images():
    train, test = fixed_28x28_split("fashion_mnist")
    assert np.bincount(train.y).tolist() == [6000] * 10
    assert np.bincount(test.y).tolist() == [1000] * 10


def write_idx_folder(folder, sizes=(6, 4), labels_max=9):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in zip(("train", "test"), sizes, strict=True):
        arrays[f"x_{split}"] = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        arrays[f"y_{split}"] = rng.integers(0, labels_max + 1, n).astype(np.uint8)
    for name, file in fashion_mnist.IDX_FILES.items():
        write_idx(folder / file, idx_bytes(arrays[name]))
    return arrays


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty data cache and an IDX folder of the test's own."""
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(fashion_mnist.FASHION_DIR_ENV, str(tmp_path / "idx"))
    return tmp_path


def test_the_idx_files_are_read_and_cached(isolated):
    arrays = write_idx_folder(isolated / "idx")
    train, test = fashion_mnist.load_fashion_mnist.__wrapped__()
    assert train.x.shape == (6, 1, 28, 28) and test.x.shape == (4, 1, 28, 28)
    np.testing.assert_array_equal(train.x[:, 0], arrays["x_train"])
    np.testing.assert_array_equal(test.y, arrays["y_test"])
    assert train.y.dtype == np.int64
    for file in fashion_mnist.IDX_FILES.values():
        (isolated / "idx" / file).unlink()
    again, _ = fashion_mnist.load_fashion_mnist.__wrapped__()  # from the cache now
    np.testing.assert_array_equal(again.x, train.x)


def test_malformed_idx_files_fail_rather_than_fall_back(isolated):
    write_idx_folder(isolated / "idx")
    images = isolated / "idx" / fashion_mnist.IDX_FILES["x_test"]
    write_idx(images, idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-5])
    with pytest.raises(IDXError, match="found 3131"):
        fashion_mnist.fashion_arrays()
    write_idx_folder(isolated / "idx", labels_max=12)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        fashion_mnist.fashion_arrays()


def test_without_idx_files_and_network_one_error_names_both_ways(isolated, monkeypatch):
    isolated_hub(monkeypatch, isolated / "hf")  # datasets' offline mode: no connection tried
    with pytest.raises(FileNotFoundError) as caught:
        fashion_mnist.load_fashion_mnist.__wrapped__()
    message = str(caught.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert "zalando-datasets/fashion_mnist" in message and "network" in message
    assert fashion_mnist.FASHION_DIR_ENV in message
    assert isinstance(caught.value.__cause__, HubUnavailableError)
    assert not (isolated / "cache").exists()


def test_without_idx_files_the_hub_copy_is_loaded(isolated, monkeypatch):
    standin = write_image_standin(
        isolated / "hub",
        config="fashion_mnist",
        image_column="image",
        channels=1,
        size=28,
        counts={"train": 12, "test": 5},
    )
    isolated_hub(monkeypatch, isolated / "hf")
    monkeypatch.setattr(fashion_mnist, "HUB_NAME", str(standin))
    train, test = fashion_mnist.load_fashion_mnist.__wrapped__()
    assert train.x.shape == (12, 1, 28, 28) and test.x.shape == (5, 1, 28, 28)
    assert train.x.dtype == np.uint8 and train.y.dtype == np.int64
    np.testing.assert_array_equal(train.x[:, 0, 0, 0], [pixel(y, 0) for y in train.y])
