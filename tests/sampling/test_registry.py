"""The sampler registry: built-in ids, registration and its errors."""

import numpy as np
import pytest

from flwr_split.sampling import (
    UniformGlobal,
    get_sampler,
    register_sampler,
    registered_samplers,
)


def test_built_in_samplers_are_registered_and_sorted():
    assert {"fixed", "ugs", "lds", "fpls", "fls"} <= set(registered_samplers())
    assert registered_samplers() == sorted(registered_samplers())


def test_registering_a_second_class_under_a_taken_id_fails():
    class Impostor(UniformGlobal):
        sampler_id = "ugs"

    with pytest.raises(ValueError, match="already registered"):
        register_sampler(Impostor)


def test_registering_a_class_without_id_fails():
    class Nameless:
        pass

    with pytest.raises(ValueError, match="non-empty string"):
        register_sampler(Nameless)


@pytest.mark.parametrize("sampler_id", registered_samplers())
def test_per_client_batch_says_whether_the_union_batch_is_the_batch_size_times_the_clients(
    sampler_id,
):
    sampler = get_sampler(sampler_id)
    plan = sampler.plan(np.full(4, 1000), 32, seed=0)
    expected = 4 * 32 if sampler.per_client_batch else 32
    assert plan.sum(axis=1).mean() == pytest.approx(expected, rel=0.05)
