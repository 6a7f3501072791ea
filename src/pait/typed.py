"""Strict checks of plain values (from YAML or the command line) against type hints, with ranges.

``check_value(hint, value, where)`` accepts ``value`` only if it is of the hinted type, strictly: a
string is never a number or a boolean, a boolean is never a number, a float must be finite (an int
is a float too), a ``Literal`` takes one of its values. Containers (``tuple[int, ...]``,
``Mapping[str, T]``, ``Sequence[T]``) are checked entry by entry; ``T | None`` takes None.

A range is declared in the hint itself with ``Annotated``, so where an option is defined is where
its bounds are: ``damping: Annotated[float, Range(gt=0)]``, or with the aliases below,
``damping: Positive = 1.0``, ``rounds: Count = 100``, ``seed: Seed = 0``. Score options (see
``pait.scores.registry``), suite options and config fields are all checked this way.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pait.errors import ConfigError

INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``Range(gt=0)`` (> 0), ``Range(ge=1)`` (>= 1), ``Range(ge=0, le=1)``."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def holds(self, value: float) -> bool:
        return ((self.gt is None or value > self.gt) and (self.ge is None or value >= self.ge)
                and (self.lt is None or value < self.lt) and (self.le is None or value <= self.le))

    def __str__(self) -> str:
        parts = [f"{op} {bound:g}" if isinstance(bound, float) else f"{op} {bound}"
                 for op, bound in ((">", self.gt), (">=", self.ge), ("<", self.lt), ("<=", self.le)) if bound is not None]
        return " and ".join(parts)


Positive = Annotated[float, Range(gt=0)]  # a finite number > 0: dampings, temperatures
NonNegative = Annotated[float, Range(ge=0)]  # a finite number >= 0: rates, decays
Count = Annotated[int, Range(ge=1)]  # an integer >= 1: chunk sizes, iterations, rounds, batch sizes
Seed = Annotated[int, Range(ge=0, le=INT64_MAX)]  # a seed that numpy and torch both take


def brief(value: Any, limit: int = 80) -> str:
    """``repr(value)``, cut to about ``limit`` characters so that a huge value keeps a message short."""
    text = repr(value)
    size = f"{len(value)} characters" if isinstance(value, str) else f"{len(text)} characters as text"
    return text if len(text) <= limit else f"{text[:limit]}... ({size})"


def check_value(hint: Any, value: Any, where: str) -> None:
    """A ConfigError naming ``where``, the expected type or range and the value, unless ``value`` fits ``hint``."""
    problem = _problem(hint, value, where)
    if problem is not None:
        raise ConfigError(problem)


def describe(hint: Any) -> str:
    """``hint`` in words, as messages name it: ``a finite number > 0``, ``int >= 1``, ``one of 'a', 'b'``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        ranges = [str(m) for m in hint.__metadata__ if isinstance(m, Range)]
        return " ".join([describe(args[0]), *ranges])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(map(repr, args))
    names = {bool: "bool", int: "int", float: "a finite number", str: "str", Path: "a path", type(None): "null"}
    if hint in names:
        return names[hint]
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        return "a list"
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))


def _problem(hint: Any, value: Any, where: str) -> str | None:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return None
    if origin is Annotated:
        inner = _problem(args[0], value, where)
        if inner is not None:  # a container's entry names itself; a number names its whole range
            return inner if typing.get_origin(args[0]) else f"{where}: expected {describe(hint)}, got {brief(value)}"
        bad = [m for m in hint.__metadata__ if isinstance(m, Range) and not m.holds(value)]
        return f"{where}: expected {describe(hint)}, got {brief(value)}" if bad else None
    if origin in (typing.Union, types.UnionType):
        problems = [_problem(a, value, where) for a in args]
        if all(p is not None for p in problems):
            fits = [p for a, p in zip(args, problems) if _shallow_fit(a, value)]
            return fits[0] if len(fits) == 1 else f"{where}: expected {describe(hint)}, got {brief(value)}"
        return None
    if origin is Literal:
        ok = any(type(value) is type(a) and value == a for a in args)
        return None if ok else f"{where}: expected {describe(hint)}, got {brief(value)}"
    if origin in (tuple, list, Sequence) or hint in (tuple, list, Sequence):
        if not isinstance(value, (list, tuple)):
            return f"{where}: expected {describe(hint)}, got {brief(value)}"
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                return f"{where}: expected a list of {len(args)} entries, got {brief(value)}"
            return next((p for i, (a, v) in enumerate(zip(args, value)) if (p := _problem(a, v, f"{where}[{i}]"))), None)
        entry = args[0] if args else Any
        return next((p for i, v in enumerate(value) if (p := _problem(entry, v, f"{where}[{i}]"))), None)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            return f"{where}: expected {describe(hint)}, got {brief(value)}"
        key_hint, value_hint = args if args else (Any, Any)
        for k, v in value.items():
            problem = _problem(key_hint, k, f"{where} key {brief(k)}") or _problem(value_hint, v, f"{where}.{k}")
            if problem:
                return problem
        return None
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else f"{where}: expected {describe(hint)}, got {brief(value)}"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"{where}: expected {describe(hint)}, got {brief(value)}"
    if hint is Path:
        return None if isinstance(value, (str, Path)) else f"{where}: expected {describe(hint)}, got {brief(value)}"
    if hint is type(None):
        return None if value is None else f"{where}: expected null, got {brief(value)}"
    if isinstance(hint, type):
        return None if isinstance(value, hint) else f"{where}: expected {describe(hint)}, got {brief(value)}"
    return None  # a hint this checker does not know (a Protocol, a TypeVar): left to the code that uses it


def _shallow_fit(hint: Any, value: Any) -> bool:
    """Whether ``value`` has the outer type of ``hint`` (its own message is then the helpful one)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _shallow_fit(typing.get_args(hint)[0], value)
    if origin in (tuple, list, Sequence):
        return isinstance(value, (list, tuple))
    if origin in (dict, Mapping):
        return isinstance(value, Mapping)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(hint, type) and hint is not type(None) and isinstance(value, hint)
