"""The sampler registry: built-in ids, registration and its errors."""

import pytest

from flwr_split.sampling import UniformGlobal, register_sampler, registered_samplers


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
