"""The study's claims, measured on the results table, with verdicts from intervals (see ``stats.verdict``).

P1 (pruning with source data preserves transfer): the zero-shot pruned accuracy against the unpruned
one (relative drops, mean and 95% CI over source x seed); the verdict compares each data-dependent
score with `magnitude` on mean transfer accuracy, paired on identical units.
P2 (re-training on the source does not hurt transfer): re-trained minus pruned mean transfer accuracy
per unit; the verdict comes from the interval of its mean.
Second-order scores (`fisher_diag`, `kfac`) at least as good as `magnitude` at each encoder's highest
sparsity in the run: paired differences on source and mean transfer accuracy, both stages.
"""

from __future__ import annotations

import pandas as pd

from pait.report.pairwise import PAIRED_FIELDS
from pait.report.stats import MARGIN, Paired, paired, verdict
from pait.report.tables import UNIT_KEYS, interval_columns, per_unit

KEYS = ["encoder", "score", "recovery", "sparsity"]
DATA_FREE = ("magnitude", "random", "synflow")
SECOND_ORDER = ("fisher_diag", "kfac")


def p1_table(results: pd.DataFrame) -> pd.DataFrame:
    """Relative accuracy drops (1 - pruned / unpruned) on the source and on mean transfer: mean, CI, n per setting."""
    units = per_unit(results).pivot_table(index=UNIT_KEYS, columns="stage", values=["source_acc", "transfer_acc"])
    drops = pd.DataFrame({
        "source_drop": 1 - units[("source_acc", "pruned")] / units[("source_acc", "unpruned")],
        "transfer_drop": 1 - units[("transfer_acc", "pruned")] / units[("transfer_acc", "unpruned")],
    }).reset_index()
    rows = [{**dict(zip(KEYS, key)), **interval_columns(g.source_drop, "source_drop"),
             **interval_columns(g.transfer_drop, "transfer_drop")} for key, g in drops.groupby(KEYS)]
    return pd.DataFrame(rows)


def p2_pairs(results: pd.DataFrame) -> pd.DataFrame:
    """Recovered minus pruned accuracy for every (setting, source, seed, transfer target); recovery ``none``
    is left out (its recovered stage is the pruned one, so its gain is zero by construction, not a finding)."""
    transfer = results[~results.is_source]
    if "recovery" not in transfer:
        transfer = transfer.assign(recovery="sgd")
    transfer = transfer[transfer.recovery != "none"]
    if not (transfer.stage == "recovered").any():
        return pd.DataFrame(columns=UNIT_KEYS + ["target", "gain"])
    acc = transfer.pivot_table(index=UNIT_KEYS + ["target"], columns="stage", values="accuracy", aggfunc="mean")
    return (acc["recovered"] - acc["pruned"]).rename("gain").reset_index()


def _with_verdicts(table: pd.DataFrame, margin: float) -> pd.DataFrame:
    """Add the verdict interval (``v_low``, ``v_high``: see ``stats.Paired.verdict_interval``) and the verdict."""
    table = table.copy().reset_index(drop=True)
    bounds = [Paired(**{f: getattr(r, f) for f in PAIRED_FIELDS}).verdict_interval() for r in table.itertuples()]
    table["v_low"] = [lo for lo, _ in bounds]
    table["v_high"] = [hi for _, hi in bounds]
    table["verdict"] = [verdict(lo, hi, margin) for lo, hi in bounds]
    return table


def p2_table(results: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """Per setting: the mean transfer gain per unit (n, mean, bootstrap CI, p-values, verdict), worst pair, violations."""
    pairs = p2_pairs(results)
    per_unit_gain = pairs.groupby(UNIT_KEYS).gain.mean()
    rows = []
    for key, g in per_unit_gain.groupby(KEYS):
        p = paired(g.to_numpy())
        rows.append([*key, *(getattr(p, f) for f in PAIRED_FIELDS)])
    table = _with_verdicts(pd.DataFrame(rows, columns=KEYS + PAIRED_FIELDS), margin)
    grouped = pairs.groupby(KEYS).gain
    extra = pd.DataFrame({"worst": grouped.min(), "violations": grouped.apply(lambda g: int((g < 0).sum())),
                          "pairs": grouped.size()}).reset_index()
    return table.merge(extra, on=KEYS)


def p1_verdicts(table: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """From ``pairwise_table``: each data-dependent score minus `magnitude` on zero-shot mean transfer, with verdict."""
    sel = table[(table.metric == "transfer_acc") & (table.stage == "pruned") & ~table.score.isin(DATA_FREE)]
    return _with_verdicts(sel, margin)


def second_order_verdicts(table: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """From ``pairwise_table``: `fisher_diag` / `kfac` minus `magnitude` at each encoder's highest sparsity."""
    highest = table.groupby("encoder").sparsity.transform("max")
    return _with_verdicts(table[table.score.isin(SECOND_ORDER) & (table.sparsity == highest)], margin)
