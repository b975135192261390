"""Tests for the codec registry and spec strings."""

import pytest

from flwr_split.codecs import Codec, CodecError, example_spec, get_codec, registered_codecs
from flwr_split.codecs.quant import Quant
from flwr_split.codecs.registry import register_codec
from flwr_split.codecs.topk import TopK
from flwr_split.common.spec_strings import parse_spec
from tests.helpers import on_path


def test_built_in_codecs_are_registered():
    assert {"identity", "fp16", "quant", "topk"} <= set(registered_codecs())
    assert registered_codecs() == sorted(registered_codecs())


@pytest.mark.parametrize(
    ("spec", "config"),
    [
        ("quant:bits=8,stochastic=true", {"id": "quant", "bits": 8, "stochastic": True}),
        ("quant", {"id": "quant"}),
        (" topk : ratio = 0.9 ", {"id": "topk", "ratio": 0.9}),
        ("quant:stochastic=False,", {"id": "quant", "stochastic": False}),
        ("x:name=abc", {"id": "x", "name": "abc"}),
    ],
)
def test_spec_string_parses_into_typed_config(spec, config):
    assert parse_spec(spec) == config


@pytest.mark.parametrize(
    "spec", ["", "   ", "quant:bits", "quant:=8", None, "quant:bits=8,bits=4", "quant:id=topk"]
)
def test_malformed_spec_raises(spec):
    with pytest.raises(ValueError):
        parse_spec(spec)


def test_spec_string_builds_the_configured_codec():
    codec = get_codec("quant:bits=4,stochastic=true")
    assert codec == Quant(bits=4, stochastic=True)
    assert codec.get_config() == {"id": "quant", "bits": 4, "stochastic": True}


def test_spec_string_without_options_uses_defaults():
    assert get_codec("topk") == TopK()
    assert get_codec("quant").get_config() == {"id": "quant", "bits": 8, "stochastic": False}


def test_config_dict_builds_equal_codec_and_is_not_mutated():
    config = {"id": "topk", "ratio": 0.75}
    assert get_codec(config) == TopK(ratio=0.75)
    assert config == {"id": "topk", "ratio": 0.75}


@pytest.mark.parametrize("codec_id", registered_codecs())
def test_every_codec_has_a_typical_spec_and_one_for_negative_values(codec_id):
    typical, signed = example_spec(codec_id), example_spec(codec_id, signed=True)
    assert get_codec(typical).codec_id == get_codec(signed).codec_id == codec_id
    assert get_codec(signed).accepts_negative
    assert signed == typical or not get_codec(typical).accepts_negative


def test_a_codec_without_an_example_spec_is_typical_at_its_defaults_and_may_refuse_signed():
    class Positive(Codec):
        codec_id = "positive_only_test"
        accepts_negative = False

        def encode(self, tensor, ctx=None):
            raise NotImplementedError

        def decode(self, encoded, ctx=None):
            raise NotImplementedError

    with on_path():  # forgets the registration afterwards
        register_codec(Positive)
        assert example_spec("positive_only_test") == "positive_only_test"
        with pytest.raises(CodecError, match="no setting for negative values"):
            example_spec("positive_only_test", signed=True)
    assert example_spec("ms", signed=True) == "ms:ratio=0.99,bits=2,signed=true"
    with pytest.raises(CodecError, match="unknown codec"):
        example_spec("nosuch")


def test_codecs_with_different_options_are_not_equal():
    assert get_codec("quant:bits=4") != get_codec("quant:bits=5")
    assert get_codec("topk:ratio=0.5") != get_codec("quant")


def test_unknown_codec_id_names_the_registered_ids():
    with pytest.raises(CodecError, match="unknown codec 'zstd'") as info:
        get_codec("zstd:level=3")
    for codec_id in registered_codecs():
        assert codec_id in str(info.value)


def test_config_without_id_is_rejected():
    with pytest.raises(CodecError, match="unknown codec None"):
        get_codec({"bits": 8})


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("quant:levels=8", "bad options for codec 'quant'"),
        ("quant:bits=99", "bits"),
        ("quant:bits=8.5", "bits"),
        ("quant:stochastic=yes", "stochastic"),
        ("topk:ratio=1.0", "ratio"),
        ("identity:ratio=0.5", "bad options for codec 'identity'"),
    ],
)
def test_bad_option_raises_codec_error(spec, match):
    with pytest.raises(CodecError, match=match):
        get_codec(spec)


def test_registering_a_second_class_under_a_taken_id_fails():
    class Impostor(Quant):
        codec_id = "quant"

    with pytest.raises(ValueError, match="already registered"):
        register_codec(Impostor)
    assert get_codec("quant").__class__ is Quant


def test_registering_a_class_without_id_fails():
    class Nameless(Codec):
        def encode(self, tensor, ctx=None):
            raise NotImplementedError

        def decode(self, encoded, ctx=None):
            raise NotImplementedError

    with pytest.raises(ValueError, match="no codec_id"):
        register_codec(Nameless)
