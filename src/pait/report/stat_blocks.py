"""Report blocks for the statistics: the paired table against `magnitude` and the claims' verdicts."""

from __future__ import annotations

import math

import pandas as pd

from pait.report.claims import TRANSFER, p1_verdicts, second_order_verdicts
from pait.report.document import Block, Bullets, Heading, Table, Text
from pait.report.pairwise import BASELINE, METRICS
from pait.report.stats import COLLAPSE_MARGIN, COLLAPSED, FAILS, HOLDS, MARGIN, UNCLEAR
from pait.report.tables import stage_label


INTERVAL = ("the two-way cluster 95% CI over sources and seeds (units of one source share it, units of one seed share "
            "every task's split and head: Cameron-Gelbach-Miller variance, t on min(sources, seeds) − 1 df; with one "
            "seed, the t interval over sources)")
RULE = (f"Verdict rule (margin {MARGIN:g}, i.e. {100 * MARGIN:g} accuracy point): a claim that A is at least as good as B "
        f"**holds** when the whole interval of the mean difference A − B lies at or above −{MARGIN:g}, **does "
        f"not hold** when it lies entirely below −{MARGIN:g}, and is **unclear** otherwise (also when there is no "
        f"interval: one source and one seed). The interval is {INTERVAL}. Each table of settings is one family: the "
        "Holm column gives the verdicts under Holm's step-down control of the family-wise error (one-sided tests "
        f"against −{MARGIN:g} at 2.5% each way), beside the raw ones. A setting whose two sides both have a mean "
        f"accuracy below chance + {COLLAPSE_MARGIN:g} (chance = 1 / classes of the task) is **{COLLAPSED}**: neither "
        "encoder tells the classes apart, so the comparison says nothing. Counts of negative pairs are shown for "
        "information and never decide a verdict.")


def fmt_ci(mean: float, low: float, high: float, style: str = "plain") -> str:
    """``mean [low, high]``; ``style`` is "plain" (0.812), "signed" (+0.012) or "pct" (+1.2%); "(no CI)" if undefined,
    "n/a" without a mean."""
    f = {"plain": "{:.3f}".format, "signed": "{:+.3f}".format, "pct": lambda v: f"{100 * v:+.1f}%"}[style]
    if math.isnan(mean):
        return "n/a (no replicate)"
    if math.isnan(low) or math.isnan(high):
        return f"{f(mean)} (no CI, n = 1)"
    return f"{f(mean)} [{f(low)}, {f(high)}]"


def fmt_p(p: float) -> str:
    """A p-value to three decimals; "—" where undefined (fewer than 2 pairs)."""
    return "—" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def fmt_n(r) -> str:
    """``n (sources x seeds)`` of one row of paired statistics."""
    return f"{r.n} ({r.sources} x {r.seeds})"


def pairwise_rows(table: pd.DataFrame) -> list[list[str]]:
    """Rows of the paired table as shown in the report."""
    return [[r.encoder, r.score, f"{r.sparsity:.2%}", stage_label(r.stage, r.recovery), METRICS[r.metric], fmt_n(r),
             fmt_ci(r.mean, r.low, r.high, "signed"), fmt_p(r.wilcoxon_p), fmt_p(r.sign_p)] for r in table.itertuples()]


def pairwise_blocks(table: pd.DataFrame, baseline: str = BASELINE) -> list[Block]:
    """The paired comparison of every score with ``baseline`` (``pairwise.pairwise_table(results, baseline)``)."""
    head = [Heading(f"Each score against `{baseline}`, paired")]
    if table.empty:
        return head + [Text(f"Needs `{baseline}` and at least one other score on the same units.")]
    return head + [
        Text(f"Score minus `{baseline}` on identical units (same encoder, source, seed and sparsity), on source accuracy "
             "and on mean transfer accuracy (mean over the unit's non-source tasks). n is the number of unit pairs "
             f"(sources x seeds); the interval is {INTERVAL}; p-values are two-sided, Wilcoxon signed-rank and sign "
             "test over the pairs as if independent (zero differences dropped; — where n < 2)."),
        Table(["encoder", "score", "sparsity", "stage", "accuracy", "n", "mean difference [95% CI]", "Wilcoxon p",
               "sign p"], pairwise_rows(table)),
    ]


def verdict_counts(table: pd.DataFrame, column: str = "verdict") -> str:
    """"holds in a, does not hold in b, unclear in c[, collapsed in d] of N settings" of one verdict column."""
    counts = table[column].value_counts()
    shown = (HOLDS, FAILS, UNCLEAR) + ((COLLAPSED,) if counts.get(COLLAPSED, 0) else ())
    parts = ", ".join(f"{v} in {int(counts.get(v, 0))}" for v in shown)
    return f"{parts} of {len(table)} setting(s)"


def both_counts(table: pd.DataFrame) -> str:
    """The raw verdict counts, then those with Holm's correction over the table's settings."""
    return f"{verdict_counts(table)}; with Holm's correction: {verdict_counts(table, 'holm_verdict')}"


TRANSFER_NAMES = dict(zip(TRANSFER, ("all transfer tasks", "near transfer", "far transfer")))


def p2_counts(table: pd.DataFrame) -> str:
    """``both_counts`` of a ``claims.p2_table``, of each transfer kind apart when it has near and far rows."""
    kinds = [k for k in TRANSFER_NAMES if (table.transfer == k).any()]
    if kinds == ["all"]:
        return both_counts(table)
    return "; ".join(f"{TRANSFER_NAMES[k]}, {both_counts(table[table.transfer == k])}" for k in kinds)


def fmt_interval(low: float, high: float) -> str:
    """``[low, high]`` signed; "none" if undefined (one source and one seed)."""
    return "none (one cell)" if math.isnan(low) or math.isnan(high) else f"[{low:+.3f}, {high:+.3f}]"


def verdict_rows(table: pd.DataFrame) -> list[list[str]]:
    return [[r.encoder, r.score, f"{r.sparsity:.2%}", stage_label(r.stage, r.recovery), METRICS[r.metric], fmt_n(r),
             fmt_ci(r.mean, r.low, r.high, "signed"), f"{r.mean_a:.3f} / {r.mean_b:.3f}", f"**{r.verdict}**",
             f"**{r.holm_verdict}**"] for r in table.itertuples()]


def claim_blocks(pairwise: pd.DataFrame, p2: pd.DataFrame) -> list[Block]:
    """The verdicts of "data-dependent scores vs magnitude", P2 and "second-order scores at least as good as
    magnitude at high sparsity" (P1 as the paper states it, own mask vs other sources' masks, has its own
    section: ``own_mask_blocks``)."""
    header = ["encoder", "score", "sparsity", "stage", "accuracy", "n", "mean difference [95% CI]", "A / B accuracy",
              "verdict", "verdict, Holm"]
    p1, so = p1_verdicts(pairwise), second_order_verdicts(pairwise)
    blocks: list[Block] = [Heading("Verdicts"), Text(RULE)]
    items = []
    if p1.empty:
        items.append(f"Data-dependent scores vs `{BASELINE}`: no verdict; it needs `{BASELINE}` and a "
                     "data-dependent score on the same units.")
    else:
        items.append(f"Data-dependent scores vs `{BASELINE}` (a data-dependent score keeps zero-shot mean transfer "
                     f"accuracy at least as well as data-free `{BASELINE}`; score minus `{BASELINE}`): {both_counts(p1)}.")
    items.append("P2 (recovery on the source does not hurt transfer; recovered minus zero-shot mean transfer "
                 f"accuracy per unit): {p2_counts(p2)}." if not p2.empty else "P2: no recovered units.")
    if so.empty:
        items.append(f"Second-order scores at high sparsity: no verdict; it needs `{BASELINE}` and `fisher_diag` or "
                     "`kfac` on the same units.")
    else:
        items.append(f"Second-order scores (`fisher_diag`, `kfac`) at least as good as `{BASELINE}` at each encoder's "
                     f"highest sparsity: {both_counts(so)}.")
    blocks.append(Bullets(items))
    for title, table in ((f"Data-dependent scores vs `{BASELINE}`", p1), ("Second-order scores at the highest sparsity", so)):
        if not table.empty:
            blocks += [Text(f"**{title}**, per setting:"), Table(header, verdict_rows(table))]
    return blocks
