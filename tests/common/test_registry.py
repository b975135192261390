"""The generic registry: registration, entry-point discovery and its error messages."""

import sys

import pytest

from flwr_split.common.registry import Registry, RegistryError
from tests.plugins import write_dist_info


@pytest.fixture
def declared_package(tmp_path, monkeypatch):
    """An installed-looking package that declares ``shout`` in group ``demo.things``."""
    (tmp_path / "demo_pkg.py").write_text("def shout(text):\n    return text.upper()\n")
    write_dist_info(tmp_path, "demo_pkg", "[demo.things]\nshout = demo_pkg:shout\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("demo_pkg", None)


def test_registered_entry_is_returned():
    registry = Registry("thing", "demo.things")
    registry.register("len", len)
    assert registry.get("len") is len
    assert "len" in registry


def test_same_entry_twice_is_fine_another_under_the_name_is_refused():
    registry = Registry("thing", "demo.things")
    registry.register("len", len)
    registry.register("len", len)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("len", abs)


def test_unknown_name_error_names_the_known_ones_and_the_group():
    registry = Registry("thing", "demo.things")
    registry.register("len", len)
    with pytest.raises(RegistryError, match=r"unknown thing 'nosuch'; known: len .*demo\.things"):
        registry.get("nosuch")


def test_entry_point_of_an_installed_package_is_found_without_an_import(declared_package):
    registry = Registry("thing", "demo.things")
    assert "shout" in registry.names()
    assert registry.get("shout")("hi") == "HI"


def test_decorator_registers_under_the_derived_name():
    registry = Registry("thing", "demo.things")

    @registry.decorator(lambda cls: cls.thing_id)
    class Thing:
        thing_id = "thing-a"

    assert registry.get("thing-a") is Thing


def test_an_equal_copy_is_the_same_entry_a_different_one_is_refused():
    registry = Registry("thing", "demo.things")
    registry.register("pair", (1, 2))
    registry.register("pair", tuple([1, 2]))  # equal: e.g. unpickled in another process
    with pytest.raises(ValueError, match="already registered"):
        registry.register("pair", (2, 1))
