"""Each score's advantage over ``magnitude`` split into where it prunes and what it prunes within a layer.

A transplant unit (results column ``mask`` = ``densities_from=S``, score ``magnitude``) keeps, in each layer,
the largest |theta| at exactly the per-layer kept counts of S's mask. On identical (encoder, recovery, source,
seed, sparsity, stage) units, with M, T and P the accuracies of plain magnitude, of the transplant and of S:

- ``allocation`` = T - M: what S's per-layer densities alone are worth (between-layer part);
- ``selection`` = P - T: what S's choice within each layer adds at those densities (within-layer part);
- ``total`` = P - M = allocation + selection, per unit (only units where all three exist are used).

Each part is summarised per (encoder, score, recovery, sparsity, stage, metric) by ``stats.crossed_paired`` (two-way
cluster interval over sources and seeds), metrics
as in ``pairwise``: source accuracy and mean transfer accuracy.
"""

from __future__ import annotations

import pandas as pd

from pait.report.pairwise import METRICS, PAIRED_FIELDS, STAGES
from pait.report.stats import crossed_paired
from pait.report.tables import per_unit, without_after_none

BASELINE = "magnitude"
PARTS = ("total", "allocation", "selection")
TRANSPLANT = "densities_from="  # the prefix of a transplant unit's ``mask``
KEYS = ["encoder", "recovery", "source", "seed", "sparsity", "stage"]
ALLOCATION_COLUMNS = ["encoder", "score", "recovery", "sparsity", "stage", "metric", "part", *PAIRED_FIELDS]


def method_units(results: pd.DataFrame) -> pd.DataFrame:
    """``tables.per_unit`` with each mask its own method: ``score`` is the score, or ``densities_from=S`` for a
    transplant unit (a results table without a ``mask`` column holds plain masks only)."""
    mask = results["mask"] if "mask" in results else pd.Series("", index=results.index)
    method = results["score"].where(mask == "", mask)
    units = per_unit(results.assign(score=method))
    return without_after_none(units[units.stage.isin(STAGES)])


def allocation_differences(results: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """One row per (score, unit, stage) with a plain ``baseline`` unit, a transplant of the score's densities
    and the score's own unit: the three paired differences of each metric, columns ``<metric>_<part>``."""
    units = method_units(results)
    base = units[units.score == baseline].drop(columns="score")
    rows = []
    for label in sorted(s for s in units.score.unique() if s.startswith(TRANSPLANT)):
        score = label[len(TRANSPLANT):]
        transplant = units[units.score == label].drop(columns="score")
        own = units[units.score == score].drop(columns="score")
        merged = own.merge(transplant, on=KEYS, suffixes=("", "_t")).merge(base, on=KEYS, suffixes=("", "_m"))
        out = merged[KEYS].assign(score=score)
        for metric in METRICS:
            p, t, m = merged[metric], merged[f"{metric}_t"], merged[f"{metric}_m"]
            out = out.assign(**{f"{metric}_total": p - m, f"{metric}_allocation": t - m, f"{metric}_selection": p - t})
        rows.append(out)
    columns = ["score", *KEYS, *(f"{m}_{part}" for m in METRICS for part in PARTS)]
    return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)


def allocation_table(results: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """The decomposition of every score that has transplant units: per (encoder, score, recovery, sparsity,
    stage, metric) and part (total, allocation, selection), the paired summary of its differences."""
    diffs = allocation_differences(results, baseline)
    rows = []
    for (encoder, score, recovery, sparsity, stage), g in diffs.groupby(
            ["encoder", "score", "recovery", "sparsity", "stage"], sort=False):
        for metric in METRICS:
            for part in PARTS:
                values = g[["source", "seed", f"{metric}_{part}"]].dropna()
                p = crossed_paired(values[f"{metric}_{part}"], values.source, values.seed)
                rows.append([encoder, score, recovery, sparsity, stage, metric, part,
                             *(getattr(p, f) for f in PAIRED_FIELDS)])
    table = pd.DataFrame(rows, columns=ALLOCATION_COLUMNS)
    return table.sort_values(["encoder", "metric", "stage", "score", "sparsity"], kind="stable", ignore_index=True)
