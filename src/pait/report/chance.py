"""Chance accuracy (1 / classes) of each task of a run's suite, for the verdicts' collapsed outcome."""

from __future__ import annotations

from collections.abc import Mapping

from pait.report.suite_facts import suite_facts


def suite_chance(suite: Mapping | None) -> dict[str, float]:
    """``{task: 1 / classes}`` of the run's suite (``config["suite"]``) when it loads here, else ``{}``: then no
    comparison is called collapsed."""
    return {name: 1 / classes for name, classes in suite_facts(dict(suite) if suite else None).classes.items()}
