"""MNIST-1D (Greydanus 2020), generated locally with the `mnist1d` package; never downloaded."""

from __future__ import annotations

import random
from functools import lru_cache

import numpy as np

from flwr_split.tasks.data.arrays import LabeledArrays
from flwr_split.tasks.data.cache import cached_arrays

DEFAULT_NUM_SAMPLES = 5000


def _generate(num_samples: int, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, 1.0 - test_fraction, seed
    np_state, py_state = np.random.get_state(), random.getstate()
    try:  # make_dataset seeds numpy's and Python's global RNGs; leave them as they were
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


@lru_cache(maxsize=4)
def load_mnist1d_split(
    test_fraction: float = 0.2, seed: int = 0, num_samples: int = DEFAULT_NUM_SAMPLES
) -> tuple[LabeledArrays, LabeledArrays]:
    """Generate (or read the cached) MNIST-1D ``(train, test)`` split.

    Parameters
    ----------
    test_fraction : float (default: 0.2)
        Fraction of the samples held out for the test set.
    seed : int (default: 0)
        Seed of the generator (the same seed gives the same data).
    num_samples : int (default: 5000)
        Total samples, 10 classes of equal size.

    Returns
    -------
    tuple[LabeledArrays, LabeledArrays]
        Signals as float32 of shape (n, 1, 40), labels as int64.
    """
    data = cached_arrays(
        f"mnist1d-{num_samples}-{test_fraction}-{seed}.npz",
        lambda: _generate(num_samples, test_fraction, seed),
    )

    def labeled(x: np.ndarray, y: np.ndarray) -> LabeledArrays:
        return LabeledArrays(x.astype(np.float32)[:, None, :], y.astype(np.int64))

    return labeled(data["x"], data["y"]), labeled(data["x_test"], data["y_test"])
