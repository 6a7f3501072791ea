"""Report blocks of P2 (``claims.p2_table``): the transfer gain of each recovery per setting, near and far transfer
apart when the suite declares task domains, and the same across recipes (``claims.p2_dose_table``)."""

from __future__ import annotations

import pandas as pd

from pait.report.claims import TRANSFER
from pait.report.document import Block, Heading, Table, Text
from pait.report.stat_blocks import fmt_ci, fmt_n, fmt_p, p2_counts

HEADING = "P2: does recovery on the source (re-training, or a one-shot update) hurt transfer?"
GAIN = ("Recovered minus zero-shot pruned mean transfer accuracy per unit (mean over the unit's transfer tasks); "
        "n units (sources x seeds), the 95% CI of the mean gain (two-way cluster) and paired p-values; for "
        "information, the worst single (source, seed, transfer task) pair and the count of negative pairs.")
NEAR_FAR = (" Near: the mean over the unit's transfer tasks in the source's domain; far: over those in another "
            "domain; a unit without such a task is in no row of that kind.")


def split(table: pd.DataFrame) -> bool:
    """Whether the table has near and far rows beside the ``all`` ones."""
    return bool(table.transfer.isin(TRANSFER[1:]).any())


def _rows(table: pd.DataFrame, near_far: bool) -> list[list[str]]:
    return [[r.encoder, r.score, r.recovery, f"{r.sparsity:.2%}", *([r.transfer] if near_far else []), fmt_n(r),
             fmt_ci(r.mean, r.low, r.high, "signed"), fmt_p(r.wilcoxon_p), fmt_p(r.sign_p), f"{r.worst:+.3f}",
             f"{r.violations} / {r.pairs}", f"**{r.verdict}**", f"**{r.holm_verdict}**"] for r in table.itertuples()]


def _header(near_far: bool) -> list[str]:
    return ["encoder", "score", "recovery", "sparsity", *(["transfer"] if near_far else []), "n",
            "transfer gain [95% CI]", "Wilcoxon p", "sign p", "worst pair", "negative pairs", "verdict",
            "verdict, Holm"]


def p2_blocks(table: pd.DataFrame) -> list[Block]:
    """P2 of one run: the mean transfer gain of each recovery per setting (and transfer kind), interval and verdict."""
    heading = Heading(HEADING)
    if table.empty:
        return [heading, Text("Not measured: no unit in this run has a recovery other than `none`.")]
    near_far = split(table)
    family = " The table, near and far rows included, is one family for Holm's correction." if near_far else ""
    return [heading, Text(GAIN + (NEAR_FAR if near_far else "") + family),
            Table(_header(near_far), _rows(table, near_far)), Text(f"P2 {p2_counts(table)} (rule under Verdicts).")]


def _fit(r) -> str:
    """``zero-shot → recovered`` source accuracy of one dose-table row ("—" where the run has none)."""
    if pd.isna(r.source_pruned) or pd.isna(r.source_recovered):
        return "—"
    return f"{r.source_pruned:.3f} → {r.source_recovered:.3f}"


def p2_dose_blocks(table: pd.DataFrame) -> list[Block]:
    """P2 across recipes (``claims.p2_dose_table``): each setting's rows side by side, one per recipe in the table's
    order; the verdict counts per recipe."""
    heading = Heading("P2 dose-response")
    if table.empty:
        return [heading, Text("Not measured: no recipe has a recovered unit.")]
    near_far = split(table)
    recipes = list(dict.fromkeys(table.recipe))
    order = {"recipe": {r: i for i, r in enumerate(recipes)}, "transfer": {k: i for i, k in enumerate(TRANSFER)}}
    keys = ["encoder", "score", "recovery", "sparsity", "transfer", "recipe"]
    table = table.sort_values(keys, key=lambda c: c.map(order[c.name]) if c.name in order else c, kind="stable")
    rows = [[recipe, *row, _fit(r)] for recipe, row, r in zip(table.recipe, _rows(table, near_far), table.itertuples())]
    return [heading,
            Text("P2 under each recovery recipe. " + GAIN + (NEAR_FAR if near_far else "") + " Each recipe's rows"
                 + (", near and far included," if near_far else "") + " are one family for Holm's correction."),
            Text("Source: the mean accuracy on the source task, zero-shot pruned → recovered, over the setting's "
                 "units: a recipe that no longer fits its own source says little about P2."),
            Table(["recipe", *_header(near_far), "source"], rows),
            *(Text(f"{recipe}: P2 {p2_counts(table[table.recipe == recipe])}.") for recipe in recipes)]
