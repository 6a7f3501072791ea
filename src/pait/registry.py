"""One registry type for encoders, scores and suites: names -> objects, with metadata.

``register(name, **metadata)`` is a decorator; ``get(name)`` returns the object or raises a
ConfigError that lists the known names; ``names()`` lists them in registration order and
``metadata(name)`` returns what was registered with one. A family registered under a prefix answers
every name ``<prefix>:<member>``: its object is called with the member first, so ``get`` returns it
with the member bound (``get("timm:resnet18")`` is ``partial(build_timm, "resnet18")``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from pait.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named objects of one ``kind`` (used in messages: "unknown score 'x'; known scores: ...")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._objects: dict[str, T] = {}
        self._metadata: dict[str, Mapping[str, Any]] = {}
        self._families: dict[str, Callable[..., T]] = {}
        self._family_metadata: dict[str, Mapping[str, Any]] = {}
        self._family_member: dict[str, str] = {}

    def register(self, name: str, **metadata: Any) -> Callable[[T], T]:
        """Decorator: register the object under ``name`` with ``metadata``; a name is registered once."""

        def wrap(obj: T) -> T:
            self._check_new(name)
            self._objects[name] = obj
            self._metadata[name] = MappingProxyType(dict(metadata))
            return obj

        return wrap

    def register_family(
        self, prefix: str, member: str = "name", **metadata: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: register ``fn(member, ...)`` answering every name ``<prefix>:<member>``; ``member``
        names the part after the colon in listings (``timm:<model>``)."""

        def wrap(fn: Callable[..., T]) -> Callable[..., T]:
            if prefix in self._families:
                raise ConfigError(f"{self.kind} family {prefix!r} is registered twice")
            self._families[prefix] = fn
            self._family_metadata[prefix] = MappingProxyType(dict(metadata))
            self._family_member[prefix] = member
            return fn

        return wrap

    def _check_new(self, name: str) -> None:
        prefix, sep, _ = name.partition(":")
        if name in self._objects:
            raise ConfigError(f"{self.kind} {name!r} is registered twice")
        if sep and prefix in self._families:
            raise ConfigError(f"{self.kind} {name!r} lies in the family {prefix!r}")

    def _family(self, name: str) -> tuple[str, str] | None:
        prefix, sep, member = name.partition(":")
        return (prefix, member) if sep and member and prefix in self._families else None

    def get(self, name: str) -> T:
        """The object registered as ``name`` (a family's, with the member bound); a ConfigError lists the known names."""
        if name in self._objects:
            return self._objects[name]
        family = self._family(name)
        if family is None:
            raise self._unknown(name)
        prefix, member = family
        return functools.partial(self._families[prefix], member)  # type: ignore[return-value]

    def metadata(self, name: str) -> Mapping[str, Any]:
        """What ``name`` was registered with; for a family, a pattern (``timm:<model>``) or member
        (``timm:resnet18``) gives the family's."""
        if name in self._metadata:
            return self._metadata[name]
        family = self._family(name)
        if family is None:
            raise self._unknown(name)
        return self._family_metadata[family[0]]

    def _unknown(self, name: str) -> UnknownNameError:
        return UnknownNameError(f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.known())}")

    def names(self) -> list[str]:
        """The registered names, in registration order (families not included: see ``families``)."""
        return list(self._objects)

    def families(self) -> list[str]:
        """The registered families as patterns (``timm:<model>``), in registration order."""
        return [f"{p}:<{m}>" for p, m in self._family_member.items()]

    def known(self) -> list[str]:
        """The names and the family patterns, as error messages list them."""
        return [*self._objects, *self.families()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._objects or self._family(name) is not None)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
