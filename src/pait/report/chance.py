"""Chance accuracy (1 / classes) of each task of a run's suite, for the verdicts' collapsed outcome."""

from __future__ import annotations

from collections.abc import Mapping

from pait.errors import PaitError
from pait.tasks import load_suite


def suite_chance(suite: Mapping) -> dict[str, float]:
    """``{task: 1 / classes}`` of the run's suite (``config["suite"]``) when it loads here, else ``{}``: then no
    comparison is called collapsed."""
    try:
        tasks = load_suite(suite["name"], **suite.get("options", {}))
    except PaitError:
        return {}
    return {t.name: 1 / t.num_classes for t in tasks}
