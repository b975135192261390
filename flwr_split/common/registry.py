"""Name-to-object registries that also find what installed packages declare as entry points.

Codecs, samplers, tasks and strategies each have one `Registry`. The library's
own entries register themselves on import; a user's package declares its own
in its ``pyproject.toml``::

    [project.entry-points."flwr_split.codecs"]
    mycodec = "mypackage.codecs:MyCodec"

and every process that asks for ``"mycodec"`` (a ClientApp on a SuperNode, a Ray
actor, the ServerApp) finds it without an import line: a name that is not
registered yet is looked up in the registry's entry-point group and the object
the entry point names is loaded and registered.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


class RegistryError(LookupError):
    """A name that is neither registered nor declared by an installed package."""


class Registry(Generic[T]):
    """Names to objects of one kind, filled by `register` and by entry points.

    Parameters
    ----------
    kind : str
        What the registry holds, for messages (``"codec"``, ``"task"``, ...).
    group : str
        Entry-point group searched for names that are not registered
        (``"flwr_split.codecs"``, ...).
    """

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name`` and return it.

        Registering the same object twice, or an equal one (a copy that was
        pickled to another process and back), is a no-op; a different object
        under a taken name raises `ValueError` (two packages would silently fight).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and self._entries[name] != entry:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = entry
        return entry

    def decorator(self, name_of: Callable[[T], str]) -> Callable[[T], T]:
        """Return a class decorator that registers a class under ``name_of(cls)``."""
        return lambda entry: self.register(name_of(entry), entry)

    def get(self, name: str) -> T:
        """Return the entry registered or declared under ``name``.

        Raises
        ------
        RegistryError
            If no entry and no installed entry point has that name; the
            message names the known ones.
        """
        if name not in self._entries:
            declared = self._declared().get(name)
            if declared is None:
                raise RegistryError(
                    f"unknown {self.kind} {name!r}; known: {', '.join(self.names())} "
                    f"(a package adds one through the entry-point group '{self.group}')"
                )
            self.register(name, declared.load())
        return self._entries[name]

    def names(self) -> list[str]:
        """Return the registered and the declared names, sorted."""
        return sorted({*self._entries, *self._declared()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._declared())

    def _declared(self) -> dict[str, EntryPoint]:
        return {point.name: point for point in entry_points(group=self.group)}
