"""Each score against a baseline score on identical (encoder, recovery, source, seed, sparsity) units.

Per (encoder, score, sparsity, stage, metric) the paired differences score - baseline of source
accuracy and of mean transfer accuracy (mean over the unit's non-source targets), summarised by
``stats.paired``: n pairs, mean difference, bootstrap and t 95% CIs, Wilcoxon and sign-test p-values.
"""

from __future__ import annotations

import pandas as pd

from pait.report.stats import paired
from pait.report.tables import per_unit, without_after_none

BASELINE = "magnitude"
METRICS = {"source_acc": "source", "transfer_acc": "mean transfer"}
STAGES = ("pruned", "recovered")
PAIRED_FIELDS = ["n", "mean", "low", "high", "t_low", "t_high", "wilcoxon_p", "sign_p"]
PAIR_COLUMNS = ["encoder", "score", "recovery", "sparsity", "stage", "metric", *PAIRED_FIELDS]


def paired_differences(results: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """One row per (unit, stage) of every non-baseline score: its accuracies minus the baseline's. Recovery
    ``none`` has no recovered row here: it would repeat the zero-shot comparison."""
    units = per_unit(results)
    units = without_after_none(units[units.stage.isin(STAGES)])
    keys = ["encoder", "recovery", "source", "seed", "sparsity", "stage"]
    base = units[units.score == baseline].drop(columns="score")
    other = units[units.score != baseline]
    merged = other.merge(base, on=keys, suffixes=("", "_base"))
    for metric in METRICS:
        merged[metric] = merged[metric] - merged[f"{metric}_base"]
    return merged[["encoder", "score", "recovery", "sparsity", "source", "seed", "stage", *METRICS]]


def pairwise_table(results: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """Paired comparison of every score with ``baseline``, per encoder, sparsity, stage and metric."""
    diffs = paired_differences(results, baseline)
    rows = []
    for (encoder, score, recovery, sparsity, stage), g in diffs.groupby(
            ["encoder", "score", "recovery", "sparsity", "stage"], sort=False):
        for metric in METRICS:
            p = paired(g[metric].dropna())
            rows.append([encoder, score, recovery, sparsity, stage, metric, *(getattr(p, f) for f in PAIRED_FIELDS)])
    return pd.DataFrame(rows, columns=PAIR_COLUMNS).sort_values(["encoder", "metric", "stage", "score", "sparsity"],
                                                                 ignore_index=True)
