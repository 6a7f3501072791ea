"""Report blocks of P1 as the paper states it (``own_mask``): the own-vs-other gap with its verdict, near and
far transfer where the suite declares domains, the retention of each target's accuracy, and the figure."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pait.report.document import Block, Figure, Heading, Table, Text
from pait.report.own_mask import (AT_CHANCE, KEYS, SOURCE_FREE, own_other_pairs, own_other_table, retention_by_target,
                                  split_by_domain)
from pait.report.own_mask_figure import plot_own_other
from pait.report.palette import baseline_first
from pait.report.stat_blocks import fmt_ci, verdict_counts
from pait.report.stats import COLLAPSE_MARGIN, MARGIN
from pait.report.suite_facts import SuiteFacts
from pait.report.tables import stage_label

HEADING = "P1: is pruning with the source alone approximately optimal?"


def group_ci(r, prefix: str, style: str = "signed") -> str:
    """``mean [low, high]`` of a ``{prefix}_mean/_low/_high/_n`` group; "—" where it has no value."""
    if getattr(r, f"{prefix}_n") == 0:
        return "—"
    return fmt_ci(getattr(r, f"{prefix}_mean"), getattr(r, f"{prefix}_low"), getattr(r, f"{prefix}_high"), style)


def _number(x: float) -> str:
    return "—" if pd.isna(x) else f"{x:.3f}"


def _ordered(table: pd.DataFrame, scores) -> pd.DataFrame:
    order = {s: i for i, s in enumerate(baseline_first(scores))}
    return table.assign(_o=table.score.map(order)).sort_values(["encoder", "stage", "recovery", "_o", "sparsity"])


def counts(table: pd.DataFrame) -> str:
    """The verdict counts, zero-shot and after recovery apart, over the settings with a verdict."""
    parts = []
    for name, chosen in (("zero-shot", table.stage == "pruned"), ("after recovery", table.stage == "recovered")):
        judged = table[chosen & (table.note == "")]
        if chosen.any():
            parts.append(f"{name}: {verdict_counts(judged)}, and {int(chosen.sum()) - len(judged)} without a verdict")
    return "P1 (own mask vs other sources' masks), " + "; ".join(parts) + "."


def own_mask_blocks(results: pd.DataFrame, facts: SuiteFacts, figures: Path, link: str,
                    level: str = "sparsity") -> list[Block]:
    """The P1 section; ``link`` is the folder of ``figures`` as the document refers to it, ``level`` the name of
    the sparsity column ("sparsity", or "channel ratio" for channel studies: ``tables.level_name``)."""
    heading = Heading(HEADING)
    domains = facts.domains
    pairs = own_other_pairs(results, domains)
    if pairs.empty:
        return [heading, Text("Not measured: it needs a target task that is also a source, and at least one other "
                              "source (each task the source once).")]
    split = split_by_domain(domains, set(results.source) | set(results.target))
    chance = facts.chance(dict.fromkeys(results.target))
    table = _ordered(own_other_table(pairs, chance=chance), results.score)
    where = ("Near: other sources of the target's domain; far: of another domain (domains: " + ", ".join(
        f"{t} `{domains[t]}`" for t in dict.fromkeys(results.target) if t in domains) + ")." if split else
        "One domain: the suite declares no task domains, so near and far transfer are not told apart.")
    head = ["encoder", "score", level, "stage", "n", "own acc.", "other acc.", "own − other [95% CI]",
            "verdict"] + (["own − near", "own − far"] if split else [])
    rows = []
    for r in table.itertuples():
        row = [r.encoder, r.score, f"{r.sparsity:.2%}", stage_label(r.stage, r.recovery), str(r.n), f"{r.own_acc:.3f}",
               f"{r.other_acc:.3f}", fmt_ci(r.mean, r.low, r.high, "signed"),
               f"— ({r.note})" if r.note else f"**{r.verdict}**"]
        rows.append(row + ([group_ci(r, "gap_near"), group_ci(r, "gap_far")] if split else []))
    targets = [t for t in dict.fromkeys(results.target) if t in set(pairs.target)]
    by_target = retention_by_target(pairs).set_index(KEYS + ["target"])
    kinds = ("own", "other", "near", "far") if split else ("own", "other")
    retention = []
    for r in table.itertuples():
        key = (r.encoder, r.score, r.recovery, r.sparsity, r.stage)
        cells = [f"{by_target.at[(*key, t), 'own']:.3f} / {by_target.at[(*key, t), 'other']:.3f}"
                 if (*key, t) in by_target.index else "—" for t in targets]
        retention.append([r.encoder, r.score, f"{r.sparsity:.2%}", stage_label(r.stage, r.recovery), *cells,
                          " / ".join(_number(getattr(r, f"retention_{k}")) for k in kinds)])
    path = plot_own_other(table, pairs, figures / "p1_own_vs_other.png", level)
    return [
        heading,
        Text("Every task is the source once, so each target task is evaluated, through its own frozen head on the same "
             "evaluation images, pruned with its own data and pruned with each other source's data. The gap is own "
             "mask minus other sources' masks (mean over the other sources first), per (target, seed) pair; n pairs, "
             "mean [95% CI, two-way cluster over targets and seeds]. P1 (non-inferiority) **holds** when the whole "
             f"interval lies at or below +{MARGIN:g}: other sources' masks are no worse than the "
             f"target's own by more than {100 * MARGIN:g} accuracy point; **does not hold** when it lies entirely "
             "above; **unclear** otherwise. " + where
             + " After recovery the own unit was also re-trained on the target itself, so its gap mixes the mask with "
             "the re-training; the zero-shot rows isolate the mask. No verdict is given where own and other accuracies "
             f"both lie below chance + {COLLAPSE_MARGIN:g} (`{AT_CHANCE}`"
             + (f", {chance:.3f}" if chance is not None else ": unknown here, the suite does not load") + "; the "
             f"encoder has collapsed) or where every pair's gap is zero (`{SOURCE_FREE}`: the score ignores the "
             "data)."),
        Table(head, rows),
        Text(counts(table)),
        Figure(f"{link}/{path.name}", "P1: own mask minus other sources' masks on each target (dotted: the margin); "
               "error bars: t 95% CI over (target x seed) pairs, or the pairs themselves as dots when there are 3 "
               "or fewer."),
        Text("Retention: accuracy on the target divided by the unpruned encoder's on the same target and seed, with "
             "the target's own mask / with the other sources' masks, per target (mean over seeds) and over all "
             "(target x seed) pairs" + (" (own / other / near / far)" if split else "") + "."),
        Table(["encoder", "score", level, "stage", *targets, " / ".join(kinds) + " (mean)"], retention),
    ]

