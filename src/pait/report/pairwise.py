"""Each score against a baseline score on identical (encoder, recovery, source, seed, sparsity) units.

Per (encoder, score, sparsity, stage, metric) the paired differences score - baseline of source
accuracy and of mean transfer accuracy (mean over the unit's non-source targets), summarised by
``stats.crossed_paired``: n pairs over their sources and seeds, mean difference, two-way cluster 95%
interval, Wilcoxon and sign-test p-values; beside them each side's mean accuracy and its chance level.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pait.report.stats import crossed_paired
from pait.report.tables import per_unit, without_after_none

BASELINE = "magnitude"
METRICS = {"source_acc": "source", "transfer_acc": "mean transfer"}
STAGES = ("pruned", "recovered")
PAIRED_FIELDS = ["n", "sources", "seeds", "mean", "low", "high", "se", "df", "wilcoxon_p", "sign_p"]
SIDES = ["mean_a", "mean_b", "chance"]  # the score's and the baseline's mean accuracy, chance on that metric
PAIR_COLUMNS = ["encoder", "score", "recovery", "sparsity", "stage", "metric", *PAIRED_FIELDS, *SIDES]


def target_chance(results: pd.DataFrame, chance: Mapping[str, float] | None = None) -> pd.Series:
    """Per target task: its chance accuracy, from ``chance`` (task -> 1 / classes, ``chance.suite_chance``) or else
    a ``num_classes`` column of the results; NaN when neither knows a task (then nothing is called collapsed)."""
    targets = results.drop_duplicates("target")
    if chance:
        return pd.Series({t: chance.get(t, np.nan) for t in targets.target}, dtype=float)
    if "num_classes" in targets:
        return 1 / targets.set_index("target").num_classes
    return pd.Series(np.nan, index=targets.target)


def chance_levels(results: pd.DataFrame, chance: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Per source: chance accuracy on the source task and averaged over its transfer targets (``target_chance``)."""
    chance = target_chance(results, chance)
    rows = [{"source": s, "source_acc_chance": chance.get(s, np.nan),
             "transfer_acc_chance": chance.drop(s, errors="ignore").mean()} for s in results.source.dropna().unique()]
    return pd.DataFrame(rows, columns=["source", "source_acc_chance", "transfer_acc_chance"])


def paired_differences(results: pd.DataFrame, baseline: str = BASELINE,
                       chance: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per (unit, stage) of every non-baseline score: its accuracies minus the baseline's (``metric``),
    its own (``metric_a``), the baseline's (``metric_base``) and chance (``metric_chance``). Recovery ``none``
    has no recovered row here: it would repeat the zero-shot comparison."""
    units = per_unit(results)
    units = without_after_none(units[units.stage.isin(STAGES)])
    keys = ["encoder", "recovery", "source", "seed", "sparsity", "stage"]
    base = units[units.score == baseline].drop(columns="score")
    other = units[units.score != baseline]
    merged = other.merge(base, on=keys, suffixes=("", "_base")).merge(chance_levels(results, chance), on="source",
                                                                    how="left")
    for metric in METRICS:
        merged[f"{metric}_a"] = merged[metric]
        merged[metric] = merged[metric] - merged[f"{metric}_base"]
    sides = [f"{m}_{s}" for m in METRICS for s in ("a", "base", "chance")]
    return merged[["encoder", "score", "recovery", "sparsity", "source", "seed", "stage", *METRICS, *sides]]


def pairwise_table(results: pd.DataFrame, baseline: str = BASELINE,
                   chance: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Paired comparison of every score with ``baseline``, per encoder, sparsity, stage and metric (``chance``:
    task -> chance accuracy, see ``chance_levels``)."""
    diffs = paired_differences(results, baseline, chance)
    rows = []
    for (encoder, score, recovery, sparsity, stage), g in diffs.groupby(
            ["encoder", "score", "recovery", "sparsity", "stage"], sort=False):
        for metric in METRICS:
            g_m = g.dropna(subset=[metric])
            p = crossed_paired(g_m[metric], g_m.source, g_m.seed)
            sides = [g_m[f"{metric}_{s}"].mean() for s in ("a", "base", "chance")]
            rows.append([encoder, score, recovery, sparsity, stage, metric, *(getattr(p, f) for f in PAIRED_FIELDS),
                         *sides])
    return pd.DataFrame(rows, columns=PAIR_COLUMNS).sort_values(["encoder", "metric", "stage", "score", "sparsity"],
                                                                 ignore_index=True)
