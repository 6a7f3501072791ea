"""Summaries of the results table: source and mean-transfer accuracy per unit and stage."""

from __future__ import annotations

import pandas as pd

from pait.report.stats import accuracy_ci

UNIT_KEYS = ["encoder", "score", "recovery", "sparsity", "source", "seed"]
BEFORE_RECOVERY = "-"  # the recovery of the stages before it (unpruned, pruned), which do not depend on it


def stage_label(stage: str, recovery: str) -> str:
    """How a stage is shown: ``zero-shot`` (pruned), ``after sgd`` (recovered by sgd), ``unpruned``."""
    return {"pruned": "zero-shot", "recovered": f"after {recovery}"}.get(stage, stage)


def level_name(results: pd.DataFrame) -> str:
    """What the sparsity column means: "channel ratio" for channel studies, else "sparsity"."""
    structures = set(results["structure"]) if "structure" in results else {"weights"}
    return "channel ratio" if structures == {"channels"} else "sparsity"


def with_recovery(results: pd.DataFrame) -> pd.DataFrame:
    """The results with their ``recovery`` column (``sgd`` for tables written before it existed), set to
    ``BEFORE_RECOVERY`` on the stages before recovery, so that those count once per unit, not once per recovery."""
    recovery = results["recovery"] if "recovery" in results else pd.Series("sgd", index=results.index)
    return results.assign(recovery=recovery.where(results.stage == "recovered", BEFORE_RECOVERY))


def without_after_none(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (with ``stage`` and ``recovery`` columns) without the rows after recovery ``none``: they repeat
    the zero-shot rows by construction."""
    return table[~((table.stage == "recovered") & (table.recovery == "none"))]


def per_unit(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (encoder, score, recovery, sparsity, source, seed, stage): source accuracy and mean transfer
    accuracy (stages before recovery once per unit, see ``with_recovery``)."""
    results = with_recovery(results)
    keys = UNIT_KEYS + ["stage"]
    source = results[results.is_source].groupby(keys, dropna=False).accuracy.mean().rename("source_acc")
    transfer = results[~results.is_source].groupby(keys, dropna=False).accuracy.mean().rename("transfer_acc")
    return pd.concat([source, transfer], axis=1).reset_index()


def interval_columns(values: pd.Series, prefix: str, units: pd.DataFrame | None = None) -> dict[str, float]:
    """``{prefix}_mean``, ``_low``, ``_high`` and ``_n`` of one group of accuracies: ``stats.accuracy_ci``, two-way
    cluster over the ``source`` and ``seed`` columns of ``units`` when given (Student t otherwise), within [0, 1]."""
    values = values.dropna()
    ci = (accuracy_ci(values) if units is None else
          accuracy_ci(values, units.source.loc[values.index], units.seed.loc[values.index]))
    return {f"{prefix}_mean": ci.mean, f"{prefix}_low": ci.low, f"{prefix}_high": ci.high, f"{prefix}_n": ci.n}


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and 95% CI (two-way cluster, in [0, 1]) over (source x seed) replicates per (encoder, score, recovery,
    sparsity, stage)."""
    rows = []
    keys = ["encoder", "score", "recovery", "sparsity", "stage"]
    for key, g in per_unit(results).groupby(keys):
        rows.append({**dict(zip(keys, key)),
                     **interval_columns(g.source_acc, "source_acc", g),
                     **interval_columns(g.transfer_acc, "transfer_acc", g)})
    return pd.DataFrame(rows)
