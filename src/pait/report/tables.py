"""Summaries of the results table: source and mean-transfer accuracy per unit and stage."""

from __future__ import annotations

import pandas as pd

from pait.report.stats import mean_ci

UNIT_KEYS = ["encoder", "score", "sparsity", "source", "seed"]


def per_unit(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (encoder, score, sparsity, source, seed, stage): source accuracy and mean transfer accuracy."""
    keys = UNIT_KEYS + ["stage"]
    source = results[results.is_source].groupby(keys, dropna=False).accuracy.mean().rename("source_acc")
    transfer = results[~results.is_source].groupby(keys, dropna=False).accuracy.mean().rename("transfer_acc")
    return pd.concat([source, transfer], axis=1).reset_index()


def interval_columns(values: pd.Series, prefix: str) -> dict[str, float]:
    """``{prefix}_mean``, ``_low``, ``_high`` (Student-t 95% CI) and ``_n`` of one group of replicates."""
    ci = mean_ci(values.dropna())
    return {f"{prefix}_mean": ci.mean, f"{prefix}_low": ci.low, f"{prefix}_high": ci.high, f"{prefix}_n": ci.n}


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI over (source x seed) replicates per (encoder, score, sparsity, stage)."""
    rows = []
    for key, g in per_unit(results).groupby(["encoder", "score", "sparsity", "stage"]):
        rows.append({**dict(zip(["encoder", "score", "sparsity", "stage"], key)),
                     **interval_columns(g.source_acc, "source_acc"), **interval_columns(g.transfer_acc, "transfer_acc")})
    return pd.DataFrame(rows)
