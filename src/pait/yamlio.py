"""The project's one YAML reader: configs, ``key=value`` overrides, ``--score-option`` / ``--suite-option``
values and task-list files all go through :func:`load_yaml`.

It is PyYAML's safe loader with three changes:

- plain scalars resolve as in YAML 1.2's core schema: ``1e-2`` is the float 0.01 (YAML 1.1 reads it
  as a string), ``012`` is 12, only ``true``/``false`` are booleans (``on``, ``no`` and ``y`` stay
  strings), ``2024-01-01`` is a string, and there are no ``<<`` merge keys;
- a key written twice in one mapping is refused, naming the key and both lines;
- anchors and aliases (``&a`` / ``*a``) are refused: nothing a config needs is lost, and a few lines
  of nested aliases can no longer expand to gigabytes.

Every problem is a ConfigError naming the source, the line and the column.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from pait.errors import ConfigError

CORE_RESOLVERS = (  # YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", [*"~nN", ""]),  # "": an empty value
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)", list("-+.0123456789")),
)


class _Loader(yaml.SafeLoader):
    """The safe loader with the core schema, duplicate keys and anchors refused (see the module docstring)."""

    yaml_implicit_resolvers: dict = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise _Refused(f"YAML anchors and aliases are not accepted (found the {kind}{_short(anchor)}); "
                           "write the value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}  # key -> the line it was first written on
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                raise _Refused(f"a mapping key must be a plain value, got {_short(repr(key))}", key_node.start_mark) from None
            if first is not None:
                raise _Refused(f"key {_short(repr(key))} is written twice in one mapping (first at line {first + 1})",
                               key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = self.construct_scalar(node)
        base = {"0o": 8, "0x": 16}.get(text[:2], 10)
        return int(text[2:] if base != 10 else text, base)


for _tag, _pattern, _first in CORE_RESOLVERS:
    _Loader.add_implicit_resolver(_tag, re.compile(f"^(?:{_pattern})$"), _first)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


class _Refused(yaml.MarkedYAMLError):
    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


def load_yaml(text: str, source: str) -> Any:
    """The value of one YAML document; a ConfigError names ``source`` (a file, an override), the line
    and column, and the problem (bad syntax, a key written twice, an anchor or alias)."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (a subclass of SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{source}{where}: invalid YAML ({_short(problem, 200)})") from None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
