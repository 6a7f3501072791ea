"""Summaries of the results table: source and mean-transfer accuracy per unit and stage."""

from __future__ import annotations

import pandas as pd


def per_unit(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (encoder, score, sparsity, source, stage): source accuracy and mean transfer accuracy."""
    keys = ["encoder", "score", "sparsity", "source", "stage"]
    source = results[results.is_source].groupby(keys).accuracy.mean().rename("source_acc")
    transfer = results[~results.is_source].groupby(keys).accuracy.mean().rename("transfer_acc")
    return pd.concat([source, transfer], axis=1).reset_index()


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread (std over source rotations) per (encoder, score, sparsity, stage)."""
    units = per_unit(results)
    grouped = units.groupby(["encoder", "score", "sparsity", "stage"])
    out = grouped[["source_acc", "transfer_acc"]].agg(["mean", "std", "count"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out.reset_index()
