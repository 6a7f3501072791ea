"""What the report needs to know about a run's tasks beyond the results table: each task's domain (near and
far transfer) and number of classes (the chance level), read from the suite when it loads here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

from pait.errors import PaitError
from pait.tasks import Task, load_suite


@dataclass(frozen=True)
class SuiteFacts:
    """Per task name: its domain ('' when the suite declares none) and number of classes; empty when the
    suite does not load here (its data is not installed)."""

    tasks: tuple[Task, ...] = ()
    domains: dict[str, str] = field(default_factory=dict)
    classes: dict[str, int] = field(default_factory=dict)

    def chance(self, names) -> float | None:
        """Mean chance accuracy (1 / number of classes) over the tasks ``names``; None when one is unknown."""
        names = list(names)
        if not names or any(n not in self.classes for n in names):
            return None
        return sum(1 / self.classes[n] for n in names) / len(names)


@lru_cache(maxsize=8)
def _facts(suite_json: str) -> SuiteFacts:
    suite = json.loads(suite_json)
    try:
        tasks = load_suite(suite["name"], **suite.get("options", {}))
    except PaitError:
        return SuiteFacts()
    return SuiteFacts(tuple(tasks), {t.name: t.domain for t in tasks}, {t.name: t.num_classes for t in tasks})


def suite_facts(suite: dict | None) -> SuiteFacts:
    """The facts of the run config's ``suite`` (loaded once per process and suite)."""
    if not suite or "name" not in suite:
        return SuiteFacts()
    return _facts(json.dumps({"name": suite["name"], "options": suite.get("options", {})}, sort_keys=True))
