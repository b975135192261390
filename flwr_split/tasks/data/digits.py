"""The embedded default data set: scikit-learn's 8x8 handwritten digits (offline)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.tasks.data.cache import cached_arrays


def _split_digits(test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    labels = bunch.target.astype(np.int64)
    x, x_test, y, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}


@lru_cache(maxsize=4)
def load_digits_split(
    test_fraction: float = 0.2, seed: int = 0
) -> tuple[LabeledArrays, LabeledArrays]:
    """Load the 1,797 digits as ``(train, test)``, split stratified by label.

    The split is made with scikit-learn once per host and read back from the
    data cache (`cached_arrays`) afterwards, so a fresh ClientApp process does
    not import scikit-learn.

    Parameters
    ----------
    test_fraction : float (default: 0.2)
        Fraction of the samples held out for the test set.
    seed : int (default: 0)
        Seed of the split.

    Returns
    -------
    tuple[LabeledArrays, LabeledArrays]
        Images as float32 of shape (n, 1, 8, 8) scaled to [0, 1], labels as int64.
    """
    data = cached_arrays(
        f"digits-{test_fraction}-{seed}.npz", lambda: _split_digits(test_fraction, seed)
    )
    return LabeledArrays(data["x"], data["y"]), LabeledArrays(data["x_test"], data["y_test"])
