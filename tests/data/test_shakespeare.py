"""Shakespeare task: roles, windows, the natural partition, the model cut, the LEAF loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset

from flwr_split.tasks import TaskConfig, build_model, builtin_cut_shape, client_data
from flwr_split.tasks.data import shakespeare
from flwr_split.tasks.data.partition import group_partition
from flwr_split.tasks.data.shakespeare import (
    NUM_CLASSES,
    SEQ_LEN,
    STRIDE,
    VOCAB,
    encode_text,
    leaf_samples,
    role_samples,
    speeches,
    split_by_role,
    windows,
)
from flwr_split.wire import labels_dtype

PLAY = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.


First Citizen:
You are all resolved rather to die than to famish?
Resolved: resolved.

A stray line without a speaker

MENENIUS:
What work's, my countrymen, in hand?
"""


def _decode(codes: np.ndarray) -> str:
    return "".join(VOCAB[int(c) - 1] if c else "?" for c in codes)


def test_speeches_are_split_by_role_lines_after_blank_lines():
    found = speeches(PLAY)
    assert [role for role, _ in found] == ["First Citizen", "All", "First Citizen", "MENENIUS"]
    assert found[2][1].endswith("Resolved: resolved.")  # a colon inside a speech is no role


def test_vocabulary_fits_uint8_labels_and_unknown_characters_are_class_zero():
    assert NUM_CLASSES <= 256 and labels_dtype(NUM_CLASSES) == np.uint8
    codes = encode_text("Ab\n~é\t")
    assert codes.dtype == np.uint8
    assert _decode(codes[:4]) == "Ab\n~" and codes[4:].tolist() == [0, 0]


def test_windows_predict_the_next_character_every_stride():
    text = "".join(chr(ord("a") + i % 26) for i in range(SEQ_LEN + 2 * STRIDE + 5))
    x, y = windows(encode_text(text))
    assert x.shape == (3, SEQ_LEN) and y.shape == (3,)
    for i in range(3):
        start = i * STRIDE
        assert _decode(x[i]) == text[start : start + SEQ_LEN]
        assert _decode(y[i : i + 1]) == text[start + SEQ_LEN]
    assert windows(encode_text("short"))[0].shape == (0, SEQ_LEN)


def test_each_role_holds_out_its_last_windows_for_testing():
    roles = np.array([0, 0, 0, 0, 0, 1, 1, 2])
    x = np.arange(8)[:, None].repeat(2, axis=1)
    train, test, train_roles = split_by_role(x, np.arange(8), roles, 0.5)
    assert test.y.tolist() == [3, 4, 6]
    assert train.y.tolist() == [0, 1, 2, 5, 7]
    assert train_roles.tolist() == [0, 0, 0, 1, 2]


def test_bundled_text_gives_roles_and_windows():
    train, test = shakespeare.load_shakespeare_split(0.2)
    roles = shakespeare.shakespeare_roles(0.2)
    assert train.x.shape[1:] == (SEQ_LEN,) and train.x.dtype == np.uint8
    assert len(roles) == len(train) > 8_000 and len(test) > 1_000
    assert len(np.unique(roles)) > 250
    assert train.y.max() < NUM_CLASSES


def test_group_partition_gives_whole_groups_balanced_and_deterministic():
    groups = np.repeat(np.arange(12), [50, 40, 30, 30, 20, 10, 10, 5, 5, 5, 3, 1])
    parts = group_partition(groups, 4, seed=1)
    joined = np.concatenate(parts)
    assert sorted(joined) == list(range(len(groups)))
    owners = [set(groups[p]) for p in parts]
    assert all(a.isdisjoint(b) for i, a in enumerate(owners) for b in owners[i + 1 :])
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 10
    assert all(
        np.array_equal(a, b) for a, b in zip(parts, group_partition(groups, 4, 1), strict=True)
    )


def test_group_partition_with_one_client_per_group_and_too_many_clients():
    groups = np.array([2, 0, 2, 1])
    assert sorted(map(tuple, group_partition(groups, 3))) == [(0, 2), (1,), (3,)]
    with pytest.raises(ValueError, match="whole groups"):
        group_partition(groups, 4)


def test_natural_partition_gives_clients_disjoint_roles():
    config = TaskConfig(task="shakespeare", partitioner="natural")
    roles = shakespeare.shakespeare_roles(config.test_fraction)
    train, _ = shakespeare.load_shakespeare_split(config.test_fraction)
    parts = [client_data(config, pid, 10)[0] for pid in range(10)]
    assert sum(len(p) for p in parts) == len(train)
    assert max(len(p) for p in parts) - min(len(p) for p in parts) < 50
    # A client's windows come from its own roles: their labels' mix differs by client.
    assert len({tuple(np.bincount(p.y, minlength=NUM_CLASSES)[:5]) for p in parts}) == 10
    assert len(np.unique(roles)) >= 10


def test_natural_partitioner_needs_a_task_with_natural_groups():
    with pytest.raises(ValueError, match="partitioners"):
        TaskConfig(task="digits", partitioner="natural")


@pytest.mark.parametrize(("task", "hidden"), [("shakespeare", 64), ("shakespeare_lstm256", 256)])
def test_char_lstm_is_cut_after_the_first_lstm_and_predicts_every_class(task, hidden):
    config = TaskConfig(task=task, partitioner="natural")
    assert builtin_cut_shape(config) == (SEQ_LEN, hidden)
    assert f"80 x {hidden}" in config.definition.cuts[1]
    bottom, top = build_model(config)
    lstms = [m for m in [*bottom.modules(), *top.modules()] if isinstance(m, torch.nn.LSTM)]
    assert [(m.input_size, m.hidden_size) for m in lstms] == [(8, hidden), (hidden, hidden)]
    x = torch.from_numpy(shakespeare.load_shakespeare_split(0.2)[0].x[:3])
    acts = bottom(x)
    assert acts.shape == (3, SEQ_LEN, hidden)
    assert top(acts).shape == (3, NUM_CLASSES)


def test_the_wide_model_shares_the_default_tasks_data_and_partition():
    default = TaskConfig(task="shakespeare", partitioner="natural")
    wide = TaskConfig(task="shakespeare_lstm256", partitioner="natural")
    for pid in (0, 7):
        ours, theirs = client_data(default, pid, 10), client_data(wide, pid, 10)
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a.x, b.x)
            np.testing.assert_array_equal(a.y, b.y)


def _leaf_rows() -> Dataset:
    """LEAF-format rows built from the play above: two roles, 80-character windows."""
    x, y, roles = role_samples(PLAY * 20)
    names = np.array(["FIRST_CITIZEN_CORIOLANUS", "ALL_CORIOLANUS", "MENENIUS_CORIOLANUS"])
    return Dataset.from_dict(
        {
            "character_id": names[roles].tolist(),
            "x": [_decode(r) for r in x],
            "y": [_decode(r) for r in y[:, None]],
        }
    )


def test_leaf_rows_become_encoded_samples_with_roles_in_order_of_appearance():
    rows = _leaf_rows()
    x, y, roles = leaf_samples(rows)
    assert x.shape == (len(rows), SEQ_LEN) and y.shape == (len(rows),)
    assert roles[0] == 0 and set(roles) == set(range(len(set(rows["character_id"]))))
    assert _decode(x[0]) == rows["x"][0]


def test_leaf_loader_partitions_by_role_from_fetched_rows(monkeypatch):
    monkeypatch.setattr(shakespeare, "download_leaf", _leaf_rows)
    shakespeare._leaf_split.cache_clear()
    try:
        config = TaskConfig(task="shakespeare_leaf", partitioner="natural", test_fraction=0.25)
        parts = [client_data(config, pid, 2)[0] for pid in range(2)]
        roles = shakespeare.leaf_roles(0.25)
        train, test = shakespeare.load_leaf_split(0.25)
        assert sum(len(p) for p in parts) == len(train) == len(roles)
        assert len(test) > 0
    finally:
        shakespeare._leaf_split.cache_clear()


def test_leaf_loader_without_network_names_the_offline_task(monkeypatch):
    import flwr_datasets

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(flwr_datasets, "FederatedDataset", offline)
    with pytest.raises(RuntimeError, match="offline task is 'shakespeare'"):
        shakespeare.download_leaf()


def test_leaf_rows_of_the_wrong_length_are_rejected():
    rows = Dataset.from_dict({"character_id": ["A"], "x": ["too short"], "y": ["a"]})
    with pytest.raises(ValueError, match="80-character"):
        leaf_samples(rows)
