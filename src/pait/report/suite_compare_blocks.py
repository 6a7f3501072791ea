"""Report blocks of the suite comparison (``suite_compare``): P1's own-vs-other gap and P2's transfer gain of each
setting on each suite, one row per suite, with each suite's verdicts."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from pait.report.claims import TRANSFER
from pait.report.document import Block, Heading, Table, Text
from pait.report.own_mask_blocks import group_ci
from pait.report.palette import baseline_first
from pait.report.stat_blocks import fmt_ci, fmt_n, p2_counts, verdict_counts
from pait.report.suite_compare import SuiteRun, suite_p1, suite_p2

HEADING = "P1 and P2 on a grey suite and a colour suite"


def _sorted(table: pd.DataFrame, suites: list[str], extra: tuple[str, ...] = ()) -> pd.DataFrame:
    order = {"suite": {s: i for i, s in enumerate(suites)},
             "score": {s: i for i, s in enumerate(baseline_first(table.score))},
             "transfer": {k: i for i, k in enumerate(TRANSFER)}}
    keys = ["encoder", *extra, "score", "sparsity", "suite"]
    return table.sort_values(keys, key=lambda c: c.map(order[c.name]) if c.name in order else c, kind="stable")


def suite_compare_blocks(runs: Mapping[str, SuiteRun]) -> list[Block]:
    """The section: zero-shot P1 per suite, then P2 per suite (near and far apart where the suites declare
    domains); "not measured" when the runs share no setting."""
    suites = list(runs)
    p1, p2 = suite_p1(runs), suite_p2(runs)
    if p1.empty and p2.empty:
        return [Heading(HEADING), Text("Not measured: the suites' runs share no (encoder, score, sparsity, seed).")]
    blocks: list[Block] = [
        Heading(HEADING),
        Text("The same encoder, scores, sparsities and seeds on each suite (each run restricted to the settings every "
             "suite's run holds): " + ", ".join(f"`{s}`" for s in suites) + ". Each suite's statistics are "
             "computed as in its own study section (intervals over its own targets and seeds; each suite its own Holm "
             "family); no test is made across suites, so a difference between them is only as sure as the two "
             "intervals are apart.")]
    if not p1.empty:
        p1 = _sorted(p1[p1.stage == "pruned"], suites)
        rows = [[r.suite, r.encoder, r.score, f"{r.sparsity:.2%}", str(r.n), f"{r.own_acc:.3f}", f"{r.other_acc:.3f}",
                 fmt_ci(r.mean, r.low, r.high, "signed"), f"— ({r.note})" if r.note else f"**{r.verdict}**",
                 group_ci(r, "gap_near"), group_ci(r, "gap_far"), f"{r.retention_other:.3f}"] for r in p1.itertuples()]
        blocks += [Text("P1, zero-shot: own mask minus other sources' masks on each target (the mask alone)."),
                   Table(["suite", "encoder", "score", "sparsity", "n", "own acc.", "other acc.",
                          "own − other [95% CI]", "verdict", "own − near", "own − far", "retention, other"], rows),
                   *(Text(f"`{s}`: P1 zero-shot {verdict_counts(p1[(p1.suite == s) & (p1.note == '')])}.")
                     for s in suites if (p1.suite == s).any())]
    if not p2.empty:
        p2 = _sorted(p2, suites, ("transfer",))
        rows = [[r.suite, r.encoder, r.score, f"{r.sparsity:.2%}", r.transfer, fmt_n(r),
                 fmt_ci(r.mean, r.low, r.high, "signed"), f"**{r.verdict}**", f"**{r.holm_verdict}**"]
                for r in p2.itertuples()]
        blocks += [Text("P2: re-trained minus zero-shot transfer accuracy per unit, every transfer target (all), those "
                        "of the source's domain (near) and of another (far)."),
                   Table(["suite", "encoder", "score", "sparsity", "transfer", "n", "transfer gain [95% CI]",
                          "verdict", "verdict, Holm"], rows),
                   *(Text(f"`{s}`: P2 {p2_counts(p2[p2.suite == s])}.") for s in suites if (p2.suite == s).any())]
    return blocks
