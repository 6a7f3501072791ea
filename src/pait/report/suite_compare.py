"""P1 and P2 on two task suites side by side: the paper attributes both to tasks that resemble the pre-training
data, so the same encoder, scores and sparsities are compared on a grey digit suite and a colour object suite.

Each suite's run is first restricted to the settings every run holds (encoder, score, sparsity, seed), so the
two columns differ in the tasks alone; then P1 (``own_mask``) and P2 (``claims.p2_table``) are computed on
each run as its own report does (each run its own Holm family). No interval is drawn across suites: the suites
share no task and no unit, so their difference is read from the two intervals, not tested here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from pait.report.claims import p2_table
from pait.report.own_mask import own_other_pairs, own_other_table
from pait.report.suite_facts import SuiteFacts

SETTING = ["encoder", "score", "sparsity", "seed"]


@dataclass(frozen=True)
class SuiteRun:
    """One study's results and the facts of its suite (domains, chance), and the suite's per-task chance."""

    results: pd.DataFrame
    facts: SuiteFacts
    chance: Mapping[str, float]


def common_settings(runs: Mapping[str, SuiteRun]) -> dict[str, pd.DataFrame]:
    """Each run's results restricted to the (encoder, score, sparsity, seed) settings found in every run; an empty
    frame for each when they share none."""
    shared = None
    for run in runs.values():
        keys = set(run.results[SETTING].drop_duplicates().itertuples(index=False, name=None))
        shared = keys if shared is None else shared & keys
    out = {}
    for label, run in runs.items():
        keys = pd.MultiIndex.from_frame(run.results[SETTING])
        out[label] = run.results[keys.isin(sorted(shared or ()))].reset_index(drop=True)
    return out


def suite_p1(runs: Mapping[str, SuiteRun]) -> pd.DataFrame:
    """``own_mask.own_other_table`` of each run on the common settings, with a ``suite`` column (the runs' labels)."""
    tables = []
    for label, results in common_settings(runs).items():
        facts = runs[label].facts
        pairs = own_other_pairs(results, facts.domains)
        if not pairs.empty:
            chance = facts.chance(dict.fromkeys(results.target))
            tables.append(own_other_table(pairs, chance=chance).assign(suite=label))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["suite"])


def suite_p2(runs: Mapping[str, SuiteRun]) -> pd.DataFrame:
    """``claims.p2_table`` of each run on the common settings (each its own Holm family), with a ``suite`` column."""
    tables = [p2_table(results, chance=runs[label].chance, domains=runs[label].facts.domains).assign(suite=label)
              for label, results in common_settings(runs).items()]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["suite"])
