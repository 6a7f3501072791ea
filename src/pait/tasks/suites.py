"""The suite registry ``SUITES``: name -> builder of a list of tasks. Plugins add suites with
``@SUITES.register("name")``; a builder's keyword parameters are the suite's options, checked by their
annotations (``pait.typed``) before any image is read."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pait.errors import ConfigError
from pait.registry import Registry
from pait.typed import check_value
from pait.tasks.base import Task
from pait.tasks.embedded import embedded_suite
from pait.tasks.emoji import emoji10_suite
from pait.tasks.imagefolder import imagefolder_suite
from pait.tasks.imagenet10 import imagenet10_suite

SUITES: Registry[Callable[..., list[Task]]] = Registry("suite")
SUITES.register("embedded")(embedded_suite)
SUITES.register("imagenet10")(imagenet10_suite)
SUITES.register("imagefolder")(imagefolder_suite)
SUITES.register("emoji10")(emoji10_suite)
SKIP_BAD = "skip_bad_images"  # an option of every suite: leave unreadable images out with a warning, not fail


def check_suite_options(name: str, options: Mapping[str, Any], where: str = "suite.options") -> None:
    """Every option of suite ``name`` is one its builder takes, of the type its annotation declares, and
    ``skip_bad_images`` is true or false; else a ConfigError naming the option."""
    check_value(bool, options.get(SKIP_BAD, False), f"{where}.{SKIP_BAD}")
    options = {k: v for k, v in options.items() if k != SKIP_BAD}
    builder = SUITES.get(name)
    accepted = inspect.signature(builder).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(map(str, set(options) - set(accepted)))
        if unknown:
            raise ConfigError(f"suite {name!r}: unknown option(s) {', '.join(unknown)}; "
                              f"its options: {', '.join([*accepted, SKIP_BAD])}")
    try:
        hints = typing.get_type_hints(builder, include_extras=True)  # ranges (Annotated) are checked too
    except (NameError, TypeError):  # a plugin's annotation that does not resolve: its options go unchecked
        hints = {}
    for key, value in options.items():
        check_value(hints.get(key, Any), value, f"{where}.{key}")


def load_suite(name: str, **options: Any) -> list[Task]:
    """The tasks of suite ``name``; options are passed to its builder (an unknown option or a value of the
    wrong type is a ConfigError)."""
    check_suite_options(name, options)
    tasks = SUITES.get(name)(**{k: v for k, v in options.items() if k != SKIP_BAD})
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"suite {name!r}: task names repeat: {', '.join(names)}")
    return tasks
