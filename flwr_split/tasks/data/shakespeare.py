"""Shakespeare next-character prediction (LEAF-style), with samples tagged by speaking role.

Offline: the Tiny Shakespeare text shipped in the package (``tinyshakespeare.txt.gz``,
public domain). Each speech starts with a ``NAME:`` line after a blank line; a role's
speeches are joined in order, cut into windows of `SEQ_LEN` characters (every `STRIDE`
characters) and each window predicts the character after it. Within every role the
last ``test_fraction`` of the windows are the test samples (the text is temporal).

Online: `load_leaf_split` reads the LEAF samples of ``flwrlabs/shakespeare`` (one
role per character and play) through flwr-datasets, for users with network.
"""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from flwr_split.tasks.data.arrays import LabeledArrays

if TYPE_CHECKING:
    from datasets import Dataset

SEQ_LEN = 80
"""Characters per input window (LEAF's length)."""
STRIDE = 80
"""Characters between the starts of consecutive windows of a role."""
VOCAB = "\n" + "".join(chr(code) for code in range(32, 127))
"""Known characters: newline and printable ASCII; class ``i + 1`` is ``VOCAB[i]``."""
NUM_CLASSES = len(VOCAB) + 1
"""Classes of the task: class 0 stands for any character outside `VOCAB`."""
TEXT_FILE = Path(__file__).with_name("tinyshakespeare.txt.gz")
LEAF_DATASET = "flwrlabs/shakespeare"
LEAF_HOST = "huggingface.co:443"
"""Where `download_leaf` fetches ``LEAF_DATASET`` from (the Hugging Face Hub)."""

_LOOKUP = np.zeros(256, dtype=np.uint8)
_LOOKUP[np.frombuffer(VOCAB.encode("ascii"), dtype=np.uint8)] = np.arange(1, NUM_CLASSES)
_BLANK_LINES = re.compile(r"\n[ \t]*\n")

Split = tuple[LabeledArrays, LabeledArrays, np.ndarray]
"""``(train, test, role id of every training sample)``."""


def encode_text(text: str) -> np.ndarray:
    """Return the class of every character of ``text`` as ``uint8`` (0 if unknown)."""
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return np.where(points < 256, _LOOKUP[np.minimum(points, 255)], 0).astype(np.uint8)


def speeches(text: str) -> list[tuple[str, str]]:
    """Return ``(role, speech)`` for every block of ``text`` that starts with ``NAME:``.

    A block is text between blank lines; its first line, without the colon, is
    the role and the other lines are the speech. Blocks of one line are skipped.
    """
    found = []
    for block in _BLANK_LINES.split(text):
        head, _, speech = block.strip("\n").partition("\n")
        if head.endswith(":") and head[:-1].strip() and speech.strip():
            found.append((head[:-1].strip(), speech))
    return found


def windows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut encoded text into ``(x, y)``: windows of `SEQ_LEN` starting every `STRIDE` characters.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        ``x`` of shape ``(n, SEQ_LEN)`` and ``y`` of shape ``(n,)``, both
        ``uint8``; ``y[i]`` is the character after window ``i``.
    """
    if len(codes) <= SEQ_LEN:
        return np.zeros((0, SEQ_LEN), np.uint8), np.zeros(0, np.uint8)
    starts = np.arange(0, len(codes) - SEQ_LEN, STRIDE)
    view = np.lib.stride_tricks.sliding_window_view(codes, SEQ_LEN + 1)[starts]
    return np.ascontiguousarray(view[:, :SEQ_LEN]), view[:, SEQ_LEN].copy()


def split_by_role(x: np.ndarray, y: np.ndarray, roles: np.ndarray, test_fraction: float) -> Split:
    """Hold out the last ``floor(test_fraction * n_r)`` samples of every role ``r``.

    Samples of a role must be in temporal order; the order is kept.
    """
    is_test = np.zeros(len(y), dtype=bool)
    for role in np.unique(roles):
        members = np.flatnonzero(roles == role)
        held_out = int(test_fraction * len(members))
        if held_out:
            is_test[members[-held_out:]] = True
    train = LabeledArrays(x[~is_test], y[~is_test].astype(np.int64))
    test = LabeledArrays(x[is_test], y[is_test].astype(np.int64))
    return train, test, roles[~is_test]


def role_samples(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(x, y, role id)`` of all windows of ``text``, roles numbered by first speech."""
    by_role: dict[str, list[str]] = {}
    for role, speech in speeches(text):
        by_role.setdefault(role, []).append(speech)
    parts = [windows(encode_text("\n".join(lines))) for lines in by_role.values()]
    roles = np.concatenate([np.full(len(y), i, np.int64) for i, (_, y) in enumerate(parts)])
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]), roles


@lru_cache(maxsize=4)
def _local_split(test_fraction: float) -> Split:
    with gzip.open(TEXT_FILE, "rt", encoding="utf-8") as handle:
        text = handle.read()
    return split_by_role(*role_samples(text), test_fraction)


def load_shakespeare_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[LabeledArrays, LabeledArrays]:
    """Load the bundled Shakespeare windows as ``(train, test)``.

    Parameters
    ----------
    test_fraction : float (default: 0.2)
        Fraction of every role's windows (its last ones) held out for testing.
    seed : int (default: 0)
        Unused: the split is fixed by the text (accepted for the task interface).

    Returns
    -------
    tuple[LabeledArrays, LabeledArrays]
        Inputs as ``uint8`` classes of shape ``(n, 80)``, labels as ``int64`` classes.
    """
    train, test, _ = _local_split(test_fraction)
    return train, test


def shakespeare_roles(test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Return the speaking role id of every training sample of `load_shakespeare_split`."""
    return _local_split(test_fraction)[2]


def leaf_samples(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(x, y, role id)`` from LEAF rows with columns ``character_id``, ``x``, ``y``.

    Roles are numbered in order of first appearance; ``x`` strings must hold
    `SEQ_LEN` characters and ``y`` strings one.
    """
    inputs, targets = dataset["x"], dataset["y"]
    if any(len(s) != SEQ_LEN for s in inputs) or any(len(s) != 1 for s in targets):
        raise ValueError(f"LEAF rows need {SEQ_LEN}-character 'x' and 1-character 'y' strings")
    x = encode_text("".join(inputs)).reshape(len(inputs), SEQ_LEN)
    _, first, roles = np.unique(
        np.asarray(dataset["character_id"]), return_index=True, return_inverse=True
    )
    order = np.argsort(np.argsort(first))
    return x, encode_text("".join(targets)), order[roles]


def download_leaf() -> Dataset:
    """Return the ``train`` split of ``flwrlabs/shakespeare`` through flwr-datasets, unshuffled.

    Raises
    ------
    RuntimeError
        If the data set cannot be fetched (no network, no cached copy).
    """
    from flwr_datasets import FederatedDataset
    from flwr_datasets.partitioner import NaturalIdPartitioner

    try:
        federated = FederatedDataset(
            dataset=LEAF_DATASET,
            partitioners={"train": NaturalIdPartitioner(partition_by="character_id")},
            shuffle=False,  # keep each role's samples in temporal order for the split
        )
        return federated.load_split("train")
    except (OSError, ConnectionError) as exc:
        raise RuntimeError(
            f"cannot load '{LEAF_DATASET}' from the Hugging Face Hub (network needed on first "
            f"use; the offline task is 'shakespeare'): {exc}"
        ) from exc


@lru_cache(maxsize=2)
def _leaf_split(test_fraction: float) -> Split:
    return split_by_role(*leaf_samples(download_leaf()), test_fraction)


def load_leaf_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[LabeledArrays, LabeledArrays]:
    """Load ``flwrlabs/shakespeare`` (LEAF) as ``(train, test)``, held out per role as above.

    Needs network on first use (flwr-datasets caches the download).
    """
    train, test, _ = _leaf_split(test_fraction)
    return train, test


def leaf_roles(test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Return the role (character and play) id of every training sample of `load_leaf_split`."""
    return _leaf_split(test_fraction)[2]
