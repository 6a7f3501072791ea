"""Suite registry: name -> builder of a list of tasks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pait.tasks.base import Task
from pait.tasks.embedded import embedded_suite

SUITES: dict[str, Callable[..., list[Task]]] = {"embedded": embedded_suite}


def load_suite(name: str, **options: Any) -> list[Task]:
    """The tasks of suite ``name``; options are passed to its builder."""
    try:
        builder = SUITES[name]
    except KeyError:
        raise KeyError(f"unknown suite {name!r}; known suites: {', '.join(SUITES)}") from None
    return builder(**options)
