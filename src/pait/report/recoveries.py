"""Recoveries against each other on identical units: after-recovery accuracy of one recovery minus another's
(same encoder, score, sparsity, source and seed), on source and on mean transfer accuracy."""

from __future__ import annotations

import pandas as pd

from pait.report.document import Block, Heading, Table, Text
from pait.report.pairwise import METRICS, PAIRED_FIELDS
from pait.report.stat_blocks import INTERVAL, fmt_ci, fmt_n, fmt_p
from pait.report.stats import crossed_paired
from pait.report.tables import UNIT_KEYS, per_unit

# (recovery, baseline) pairs compared when both are in a run: the layer-wise against the all-at-once update,
# each one-shot method against doing nothing, and the one-shot update against re-training
RECOVERY_PAIRS = (("sequential", "obs"), ("obs", "none"), ("sequential", "none"), ("bn", "none"),
                  ("sequential-adaptive", "sequential"), ("bn+sequential", "sequential"), ("sgd", "none"),
                  ("sequential", "sgd"))
UNIT = [k for k in UNIT_KEYS if k != "recovery"]  # what two recoveries of one mask share
COLUMNS = ["encoder", "score", "sparsity", "recovery", "baseline", "metric", *PAIRED_FIELDS]


def recovery_pairs_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per (encoder, score, sparsity, recovery pair, metric): the paired after-recovery difference
    recovery - baseline over (source x seed) units, summarised by ``stats.crossed_paired``."""
    units = per_unit(results)
    recovered = units[units.stage == "recovered"]
    present = set(recovered.recovery)
    rows = []
    for recovery, baseline in RECOVERY_PAIRS:
        if not {recovery, baseline} <= present:
            continue
        merged = recovered[recovered.recovery == recovery].merge(
            recovered[recovered.recovery == baseline], on=UNIT, suffixes=("", "_base"))
        for (encoder, score, sparsity), g in merged.groupby(["encoder", "score", "sparsity"]):
            for metric in METRICS:
                d = g.assign(d=g[metric] - g[f"{metric}_base"]).dropna(subset=["d"])
                p = crossed_paired(d.d, d.source, d.seed)
                rows.append([encoder, score, sparsity, recovery, baseline, metric,
                             *(getattr(p, f) for f in PAIRED_FIELDS)])
    return pd.DataFrame(rows, columns=COLUMNS)


def recovery_pair_blocks(results: pd.DataFrame) -> list[Block]:
    """The paired recovery table as report blocks; nothing when the run has fewer than two recoveries."""
    table = recovery_pairs_table(results)
    if table.empty:
        return []
    rows = [[r.encoder, r.score, f"{r.sparsity:.2%}", f"`{r.recovery}` − `{r.baseline}`", METRICS[r.metric], fmt_n(r),
             fmt_ci(r.mean, r.low, r.high, "signed"), fmt_p(r.wilcoxon_p), fmt_p(r.sign_p)]
            for r in table.itertuples()]
    return [Heading("Recoveries against each other, paired"),
            Text("Accuracy after one recovery minus after another on identical units (same encoder, score, sparsity, "
                 "source and seed, hence the same mask before recovery). n is the number of unit pairs (sources x "
                 f"seeds); the interval is {INTERVAL}; p-values are two-sided Wilcoxon signed-rank and sign test."),
            Table(["encoder", "score", "sparsity", "difference", "accuracy", "n", "mean difference [95% CI]",
                   "Wilcoxon p", "sign p"], rows)]
