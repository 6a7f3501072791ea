"""The study's claims, measured on the results table, with verdicts from intervals (see ``stats.verdict``).

P1 (pruning with source data preserves transfer): the zero-shot pruned accuracy against the unpruned
one (relative drops, mean and two-way cluster 95% CI over source x seed); the verdict compares each
data-dependent score with `magnitude` on mean transfer accuracy, paired on identical units.
P2 (re-training on the source does not hurt transfer): re-trained minus pruned mean transfer accuracy
per unit; the verdict comes from the interval of its mean. With task domains (``Task.domain``) the mean is
also taken over near targets (the source's domain) and far ones (another domain) apart; across recipes
(several runs) ``p2_dose_table`` puts the runs' tables side by side.
Second-order scores (`fisher_diag`, `kfac`) at least as good as `magnitude` at each encoder's highest
sparsity in the run: paired differences on source and mean transfer accuracy, both stages.

Every table of verdicts is one family: beside the raw verdict of each row (``verdict``) it carries the
verdict under Holm's control of the family-wise error (``holm_verdict``, ``stats.holm_verdicts``). A row
whose two sides both sit within ``stats.COLLAPSE_MARGIN`` of chance is ``collapsed`` in both columns.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pait.report.own_mask import split_by_domain
from pait.report.pairwise import PAIRED_FIELDS, target_chance
from pait.report.stats import COLLAPSED, MARGIN, collapsed, crossed_ci, crossed_paired, holm_verdicts, margin_p_values, verdict
from pait.report.tables import UNIT_KEYS, per_unit

KEYS = ["encoder", "score", "recovery", "sparsity"]
DATA_FREE = ("magnitude", "random", "synflow")
SECOND_ORDER = ("fisher_diag", "kfac")
TRANSFER = ("all", "near", "far")  # a unit's transfer targets: every one, those of the source's domain, of another
P2_KEYS = KEYS + ["transfer"]
P2_COLUMNS = P2_KEYS + PAIRED_FIELDS + ["mean_a", "mean_b", "chance", "v_low", "v_high", "p_holds", "p_fails",
                                        "verdict", "holm_verdict", "worst", "violations", "pairs"]


def _drop_columns(g: pd.DataFrame, column: str) -> dict[str, float]:
    """``{column}_mean``, ``_low``, ``_high`` (two-way cluster 95% CI, a drop is at most 1) and ``_n``."""
    g = g.dropna(subset=[column])
    ci = crossed_ci(g[column], g.source, g.seed)
    return {f"{column}_mean": ci.mean, f"{column}_low": ci.low, f"{column}_high": min(ci.high, 1.0),
            f"{column}_n": ci.n}


def p1_table(results: pd.DataFrame) -> pd.DataFrame:
    """Relative accuracy drops (1 - pruned / unpruned) on the source and on mean transfer: mean, CI, n per setting.
    Only units with both stages count; a setting without any (e.g. the after-recovery rows) has no row."""
    units = per_unit(results).pivot_table(index=UNIT_KEYS, columns="stage", values=["source_acc", "transfer_acc"])
    if not {("source_acc", "pruned"), ("source_acc", "unpruned")} <= set(units.columns):
        return pd.DataFrame()
    drops = pd.DataFrame({
        "source_drop": 1 - units[("source_acc", "pruned")] / units[("source_acc", "unpruned")],
        "transfer_drop": 1 - units[("transfer_acc", "pruned")] / units[("transfer_acc", "unpruned")],
    }).reset_index().dropna(subset=["source_drop", "transfer_drop"], how="all")
    rows = [{**dict(zip(KEYS, key)), **_drop_columns(g, "source_drop"), **_drop_columns(g, "transfer_drop")}
            for key, g in drops.groupby(KEYS)]
    return pd.DataFrame(rows)


def p2_pairs(results: pd.DataFrame) -> pd.DataFrame:
    """Recovered minus pruned accuracy (``gain``, and both accuracies) for every (setting, source, seed, transfer
    target); recovery ``none`` is left out (its recovered stage is the pruned one, so its gain is zero by
    construction, not a finding)."""
    transfer = results[~results.is_source]
    if "recovery" not in transfer:
        transfer = transfer.assign(recovery="sgd")
    transfer = transfer[transfer.recovery != "none"]
    if not (transfer.stage == "recovered").any():
        return pd.DataFrame(columns=UNIT_KEYS + ["target", "gain", "recovered", "pruned"])
    acc = transfer.pivot_table(index=UNIT_KEYS + ["target"], columns="stage", values="accuracy", aggfunc="mean")
    return acc.assign(gain=acc["recovered"] - acc["pruned"])[["gain", "recovered", "pruned"]].reset_index()


def _with_verdicts(table: pd.DataFrame, margin: float) -> pd.DataFrame:
    """Add the verdict interval (``v_low``, ``v_high``: the two-way cluster interval), the one-sided p-values
    against ``-margin`` (``p_holds``, ``p_fails``), the raw ``verdict`` and the family's ``holm_verdict``; rows
    whose sides are both near chance (``mean_a``, ``mean_b``, ``chance``) are ``collapsed``."""
    table = table.copy().reset_index(drop=True)
    table["v_low"], table["v_high"] = table["low"], table["high"]
    p = [margin_p_values(r.mean, r.se, r.df, margin) for r in table.itertuples()]
    table["p_holds"] = [h for h, _ in p]
    table["p_fails"] = [f for _, f in p]
    gone = [collapsed(r.mean_a, r.mean_b, r.chance) for r in table.itertuples()]
    table["verdict"] = [COLLAPSED if c else verdict(r.low, r.high, margin) for c, r in zip(gone, table.itertuples())]
    holm = holm_verdicts(table.p_holds, table.p_fails) if len(table) else []
    table["holm_verdict"] = [COLLAPSED if c else v for c, v in zip(gone, holm)]
    return table


def transfer_kinds(pairs: pd.DataFrame, domains: Mapping[str, str] | None = None) -> pd.DataFrame:
    """``pairs`` (``p2_pairs``) with a ``transfer`` column: every pair once as ``all`` and, when ``domains`` (task
    -> domain) split the tasks (``own_mask.split_by_domain``), once more as ``near`` (the target is in the
    source's domain) or ``far`` (in another)."""
    kinds = [pairs.assign(transfer="all")]
    if split_by_domain(domains, set(pairs.source) | set(pairs.target)):
        near = pairs.source.map(domains) == pairs.target.map(domains)
        kinds.append(pairs.assign(transfer=np.where(near, "near", "far")))
    return pd.concat(kinds, ignore_index=True)


def p2_table(results: pd.DataFrame, margin: float = MARGIN, chance: Mapping[str, float] | None = None,
             domains: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per setting and transfer kind (``transfer_kinds``): the mean transfer gain per unit over its targets of that
    kind (n, mean, two-way cluster CI clipped into [-1, 1], p-values, verdicts), worst pair, violations
    (``chance``: task -> chance accuracy, see ``pairwise.target_chance``). A unit without a target of a kind
    counts in no row of it, and a setting without any has no row of it. The whole table is one Holm family,
    near and far rows included."""
    pairs = p2_pairs(results)
    if pairs.empty:
        return pd.DataFrame(columns=P2_COLUMNS)
    pairs = transfer_kinds(pairs, domains).assign(chance=lambda p: p.target.map(target_chance(results, chance)))
    values = ["gain", "recovered", "pruned", "chance"]
    per_unit_gain = pairs.groupby(UNIT_KEYS + ["transfer"])[values].mean().reset_index()
    rows = []
    for key, g in per_unit_gain.groupby(P2_KEYS):
        p = crossed_paired(g.gain, g.source, g.seed)
        rows.append([*key, *(getattr(p, f) for f in PAIRED_FIELDS), g.recovered.mean(), g.pruned.mean(),
                     g.chance.mean(skipna=False)])
    table = pd.DataFrame(rows, columns=P2_KEYS + PAIRED_FIELDS + ["mean_a", "mean_b", "chance"])
    table[["low", "high"]] = table[["low", "high"]].clip(-1.0, 1.0)  # a gain lies in [-1, 1]; the verdict is unchanged
    order = {k: i for i, k in enumerate(TRANSFER)}
    table = _with_verdicts(table.sort_values(P2_KEYS, key=lambda c: c.map(order) if c.name == "transfer" else c),
                           margin)
    grouped = pairs.groupby(P2_KEYS).gain
    extra = pd.DataFrame({"worst": grouped.min(), "violations": grouped.apply(lambda g: int((g < 0).sum())),
                          "pairs": grouped.size()}).reset_index()
    return table.merge(extra, on=P2_KEYS)[P2_COLUMNS]


def source_fit(results: pd.DataFrame) -> pd.DataFrame:
    """Per setting (``KEYS``): mean source accuracy zero-shot pruned (``source_pruned``) and recovered
    (``source_recovered``), over its units: whether a recipe still fits the source it re-trains on."""
    source = results[results.is_source & results.stage.isin(["pruned", "recovered"])]
    if "recovery" not in source:
        source = source.assign(recovery="sgd")
    means = source.pivot_table(index=KEYS, columns="stage", values="accuracy", aggfunc="mean")
    means = means.reindex(columns=["pruned", "recovered"])
    return means.rename(columns=lambda c: f"source_{c}").reset_index().rename_axis(columns=None)


def p2_dose_table(runs: Mapping[str, pd.DataFrame], domains: Mapping[str, str] | None = None, margin: float = MARGIN,
                  chance: Mapping[str, float] | None = None) -> pd.DataFrame:
    """P2 across recipes: ``p2_table`` of each run (recipe label -> its results table) with a ``recipe`` column and
    the run's ``source_fit``, in the runs' order. Each run is its own Holm family: a recipe's verdicts do not
    depend on the recipes shown beside it."""
    columns = ["recipe", *P2_COLUMNS, "source_pruned", "source_recovered"]
    tables = [p2_table(r, margin, chance, domains).assign(recipe=label).merge(source_fit(r), on=KEYS, how="left")
              for label, r in runs.items()]
    tables = [t for t in tables if not t.empty]
    if not tables:
        return pd.DataFrame(columns=columns)
    return pd.concat(tables, ignore_index=True)[columns]


def p1_verdicts(table: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """From ``pairwise_table``: each data-dependent score minus `magnitude` on zero-shot mean transfer, with verdicts."""
    sel = table[(table.metric == "transfer_acc") & (table.stage == "pruned") & ~table.score.isin(DATA_FREE)]
    return _with_verdicts(sel, margin)


def second_order_verdicts(table: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """From ``pairwise_table``: `fisher_diag` / `kfac` minus `magnitude` at each encoder's highest sparsity."""
    highest = table.groupby("encoder").sparsity.transform("max")
    return _with_verdicts(table[table.score.isin(SECOND_ORDER) & (table.sparsity == highest)], margin)
