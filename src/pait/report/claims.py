"""The study's two claims, measured on the results table.

P1 (pruning on the source preserves transfer): per encoder, score and sparsity, the zero-shot pruned
accuracy against the unpruned one, on the source and on the mean over transfer tasks, as absolute
and relative drops (mean ± std over source rotations).
P2 (re-training on the source never hurts transfer): re-trained minus pruned accuracy on each
transfer task; any negative (source, target) pair is a violation.
"""

from __future__ import annotations

import pandas as pd

from pait.report.tables import per_unit

KEYS = ["encoder", "score", "sparsity"]


def p1_table(results: pd.DataFrame) -> pd.DataFrame:
    """Relative accuracy drops (1 - pruned / unpruned) on the source and on mean transfer, per setting."""
    units = per_unit(results).pivot_table(index=KEYS + ["source"], columns="stage", values=["source_acc", "transfer_acc"])
    drops = pd.DataFrame({
        "source_drop": 1 - units[("source_acc", "pruned")] / units[("source_acc", "unpruned")],
        "transfer_drop": 1 - units[("transfer_acc", "pruned")] / units[("transfer_acc", "unpruned")],
    }).reset_index()
    out = drops.groupby(KEYS)[["source_drop", "transfer_drop"]].agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out.reset_index()


def p2_pairs(results: pd.DataFrame) -> pd.DataFrame:
    """Re-trained minus pruned accuracy for every (setting, source, transfer target)."""
    transfer = results[~results.is_source]
    acc = transfer.pivot_table(index=KEYS + ["source", "target"], columns="stage", values="accuracy", aggfunc="mean")
    return (acc["recovered"] - acc["pruned"]).rename("gain").reset_index()


def p2_table(results: pd.DataFrame) -> pd.DataFrame:
    """Per setting: mean ± std over sources of the mean transfer gain, the worst pair and the violation count."""
    pairs = p2_pairs(results)
    per_source = pairs.groupby(KEYS + ["source"]).gain.mean().groupby(KEYS)
    out = pd.DataFrame({"gain_mean": per_source.mean(), "gain_std": per_source.std()})
    grouped = pairs.groupby(KEYS).gain
    out["worst"] = grouped.min()
    out["violations"] = grouped.apply(lambda g: int((g < 0).sum()))
    out["pairs"] = grouped.size()
    return out.reset_index()
