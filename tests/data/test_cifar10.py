"""CIFAR-10 through flwr-datasets, offline on a synthetic stand-in in the Hub's layout."""

from __future__ import annotations

import numpy as np
import pytest

from flwr_split.client.app import app
from flwr_split.tasks import TaskConfig, build_model
from flwr_split.tasks.builtin import load_cifar10
from flwr_split.tasks.data import cifar10
from flwr_split.tasks.data.hub import HubUnavailableError
from flwr_split.testing import InProcessGrid
from strategies.parallel import ParallelSplitLearning
from tests.data.standin import isolated_hub, pixel, write_image_standin

COUNTS = {"train": 120, "test": 30}


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A 120 + 30 image CIFAR-10 stand-in: ``plain_text/{train,test}-*.parquet`` and README."""
    return write_image_standin(
        tmp_path_factory.mktemp("cifar10"),
        config="plain_text",
        image_column="img",
        channels=3,
        size=32,
        counts=COUNTS,
    )


@pytest.fixture
def offline(standin, tmp_path, monkeypatch):
    isolated_hub(monkeypatch, tmp_path / "hf")
    monkeypatch.setenv(cifar10.SOURCE_ENV, str(standin))
    cifar10._federated.cache_clear()
    yield standin
    cifar10._federated.cache_clear()


def partitions(scheme, n=4, **kwargs):
    return [
        cifar10.load_cifar10_partition(
            k, n, scheme=scheme, source=cifar10.cifar10_source(), **kwargs
        )
        for k in range(n)
    ]


@pytest.mark.parametrize("scheme", ["iid", "dirichlet", "extended-dirichlet"])
def test_partitions_cover_both_splits_once_as_uint8_chw_images(offline, scheme):
    parts = partitions(scheme, alpha=0.5, seed=1)
    for split, count in zip((0, 1), COUNTS.values(), strict=True):
        arrays = [part[split] for part in parts]
        assert sum(len(a) for a in arrays) == count
        for a in arrays:
            assert a.x.dtype == np.uint8 and a.x.shape[1:] == (3, 32, 32)
            assert a.y.dtype == np.int64
            # channel c of a class-y image holds pixel(y, c) (+1 at odd h + w): order kept
            for c in range(3):
                np.testing.assert_array_equal(a.x[:, c, 0, 0], [pixel(y, c) for y in a.y])
            assert (a.x[:, :, 0, 1] == a.x[:, :, 0, 0] + 1).all()
    test_sizes = [len(part[1]) for part in parts]
    assert max(test_sizes) - min(test_sizes) <= 1  # the test split is always IID


def test_iid_train_shards_are_equal_and_seeded(offline):
    sizes = [len(part[0]) for part in partitions("iid", seed=0)]
    assert sizes == [30] * 4
    first = [part[0].y for part in partitions("iid", seed=0)]
    other = [part[0].y for part in partitions("iid", seed=5)]
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_extended_dirichlet_limits_the_classes_per_client(offline):
    parts = partitions("extended-dirichlet", n=6, alpha=1.0, classes_per_client=2, seed=0)
    assert all(len(np.unique(part[0].y)) <= 2 for part in parts)


def test_an_unreachable_source_is_a_hub_error(tmp_path, monkeypatch):
    isolated_hub(monkeypatch, tmp_path / "hf")
    with pytest.raises(HubUnavailableError, match="network needed on first use"):
        cifar10._federated.__wrapped__(cifar10.HUB_NAME, "iid", 2, 0.5, 2, 0).load(0)


@pytest.mark.slow  # ResNet-18 steps on the CPU: tens of seconds on a shared machine
def test_the_task_trains_on_the_standin_in_process(offline):
    config = TaskConfig(task="cifar10", partitioner="dirichlet", dirichlet_alpha=1.0)
    strategy = ParallelSplitLearning(config, batch_size=4, min_available_nodes=2, eval_every=50)
    bottom_before = {k: v.clone() for k, v in build_model(config)[0].state_dict().items()}
    result = strategy.start(InProcessGrid(app, 2), max_steps=2)
    assert result.history["accuracy"].notna().all()
    assert sum(c.train_count for c in strategy.clients) == COUNTS["train"]
    assert result.history["eval_samples"].iloc[-1] == COUNTS["test"]
    changed = [k for k, v in strategy.bottom.state_dict().items() if not v.equal(bottom_before[k])]
    assert changed  # the clients' bottoms were synchronized after training


def test_a_node_with_a_data_path_reads_its_own_file(offline, tmp_path):
    from flwr.app import Context, RecordDict

    x = np.zeros((3, 3, 32, 32), np.uint8)
    np.savez(tmp_path / "n.npz", x_train=x, y_train=np.arange(3), x_test=x[:1], y_test=[0])
    context = Context(1, 1, {"data-path": str(tmp_path / "n.npz")}, RecordDict(), {})
    train, test = load_cifar10(context, TaskConfig(task="cifar10"))
    assert len(train) == 3 and len(test) == 1
