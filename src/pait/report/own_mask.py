"""P1 as the paper states it: parameters not important for the source are not important for the target,
so pruning with the source alone is approximately optimal.

Every task is the source once, so each target task t is evaluated, through the same head on the same
images, pruned with its own data (the unit whose source is t) and pruned with every other source's data.
Per (encoder, score, recovery, sparsity, stage) and per (target, seed) pair: the gap own − other, where
"other" is the mean over the other sources of that target and seed. P1 holds (non-inferiority) when the
95% interval of the mean gap lies at or below ``margin``: other sources' masks are no worse than the
target's own by more than the margin; it does not hold when the interval lies entirely above it. The pairs
are crossed (those of one target share its head and images, those of one seed its splits), so the interval
is the report's two-way cluster one (``stats.crossed_ci``) over targets and seeds.

Retention is accuracy / unpruned accuracy of the same target and seed. With task domains (``Task.domain``)
the other sources split into near (the target's domain) and far (another domain).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pait.report.pairwise import PAIRED_FIELDS
from pait.report.stats import COLLAPSE_MARGIN, COLLAPSED, MARGIN, crossed_ci, crossed_paired, verdict
from pait.report.tables import with_recovery, without_after_none

KEYS = ["encoder", "score", "recovery", "sparsity", "stage"]
PAIR_KEYS = KEYS + ["target", "seed"]
STAGES = ("pruned", "recovered")
KINDS = ("other", "near", "far")  # the other sources of a target: all, same domain, another domain


def split_by_domain(domains: Mapping[str, str] | None, tasks) -> bool:
    """Whether near and far can be told apart: every task has a domain and there are at least two."""
    if not domains:
        return False
    found = [domains.get(t, "") for t in tasks]
    return all(found) and len(set(found)) > 1


def own_other_pairs(results: pd.DataFrame, domains: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per (encoder, score, recovery, sparsity, stage, target, seed) whose target was also a source:
    accuracy with its own mask (``own``), mean accuracy with the other sources' masks (``other``, and
    ``near`` / ``far`` when domains split them, else NaN), the unpruned accuracy and the gaps own − kind."""
    r = with_recovery(results)
    unpruned = r[r.stage == "unpruned"].groupby(["encoder", "target", "seed"]).accuracy.mean().rename("unpruned")
    r = without_after_none(r[r.stage.isin(STAGES)])
    cells = r.groupby(PAIR_KEYS + ["source"]).accuracy.mean().reset_index()  # recoveries share one pruned row
    own = cells[cells.source == cells.target].set_index(PAIR_KEYS).accuracy.rename("own")
    others = cells[cells.source != cells.target]
    split = split_by_domain(domains, set(cells.source) | set(cells.target))
    near = others.source.map(domains or {}) == others.target.map(domains or {}) if split else None
    columns = [own, others.groupby(PAIR_KEYS).accuracy.mean().rename("other")]
    for kind, chosen in (("near", near), ("far", None if near is None else ~near)):
        columns.append(others[chosen].groupby(PAIR_KEYS).accuracy.mean().rename(kind) if split
                       else pd.Series(np.nan, index=own.index, name=kind))
    table = pd.concat(columns, axis=1).dropna(subset=["own", "other"]).reset_index()
    table = table.join(unpruned, on=["encoder", "target", "seed"])
    for kind in KINDS:
        table[f"gap_{kind}"] = table["own"] - table[kind]
    return table


def _ci(g: pd.DataFrame, column: str, prefix: str) -> dict[str, float]:
    values = g[["target", "seed", column]].dropna()
    ci = crossed_ci(values[column], values.target, values.seed)
    return {f"{prefix}_mean": ci.mean, f"{prefix}_low": ci.low, f"{prefix}_high": ci.high, f"{prefix}_n": ci.n}


AT_CHANCE, SOURCE_FREE = COLLAPSED, "same mask from every source"
SAME = 1e-9  # |own − other| below this on every pair: one mask whatever the source


def note(g: pd.DataFrame, chance: float | None, margin: float = MARGIN) -> str:
    """Why a setting's verdict says nothing: both accuracies below ``chance`` + ``stats.COLLAPSE_MARGIN`` (the
    encoder has collapsed, as the report's other verdicts say), or no gap on any pair (the score ignores the
    source's data); "" otherwise."""
    if chance is not None and max(g.own.mean(), g.other.mean()) < chance + COLLAPSE_MARGIN:
        return AT_CHANCE
    return SOURCE_FREE if bool((g.gap_other.abs() < SAME).all()) else ""


def own_other_table(pairs: pd.DataFrame, margin: float = MARGIN, chance: float | None = None) -> pd.DataFrame:
    """Per (encoder, score, recovery, sparsity, stage): the paired gap own − other (``stats.crossed_paired``
    fields over targets and seeds, the non-inferiority verdict and a ``note`` when it says nothing:
    see ``note``), the near and far gaps (mean [95% CI] and n) and the mean retention (accuracy / unpruned) of
    own, other, near and far masks."""
    rows = []
    for key, g in pairs.groupby(KEYS, sort=False):
        p = crossed_paired(g.gap_other, g.target, g.seed)
        # "other no worse than own by more than the margin" is stats.verdict's "at least as good" on −gap
        row = {**dict(zip(KEYS, key)), **{f: getattr(p, f) for f in PAIRED_FIELDS},
               "verdict": verdict(-p.high, -p.low, margin), "note": note(g, chance, margin), "own_acc": g.own.mean(),
               "other_acc": g.other.mean()}
        for kind in ("near", "far"):
            row |= _ci(g, f"gap_{kind}", f"gap_{kind}")
        for kind in ("own", *KINDS):
            row[f"retention_{kind}"] = (g[kind] / g.unpruned).mean()
        rows.append(row)
    return pd.DataFrame(rows)


def retention_by_target(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (encoder, score, recovery, sparsity, stage, target): the retention (accuracy / unpruned) with the
    target's own mask and with the other sources' masks, mean over seeds."""
    ratios = pairs.assign(own=pairs.own / pairs.unpruned, other=pairs.other / pairs.unpruned)
    return ratios.groupby(KEYS + ["target"], sort=False)[["own", "other"]].mean().reset_index()
