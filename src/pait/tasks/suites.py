"""The suite registry ``SUITES``: name -> builder of a list of tasks. Plugins add suites with
``@SUITES.register("name")``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pait.errors import ConfigError
from pait.registry import Registry
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


def load_suite(name: str, **options: Any) -> list[Task]:
    """The tasks of suite ``name``; options are passed to its builder (an unknown option is a ConfigError)."""
    builder = SUITES.get(name)
    accepted = inspect.signature(builder).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise ConfigError(f"suite {name!r}: unknown option(s) {', '.join(unknown)}; "
                              f"its options: {', '.join(accepted) or 'none'}")
    tasks = builder(**options)
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"suite {name!r}: task names repeat: {', '.join(names)}")
    return tasks
