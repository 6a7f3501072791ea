"""Report blocks of the allocation decomposition (``allocation.allocation_table``): each score's advantage over
``magnitude``, split into where it prunes (between layers) and what it prunes within a layer."""

from __future__ import annotations

import pandas as pd

from pait.report.allocation import allocation_table
from pait.report.document import Block, Heading, Table, Text
from pait.report.pairwise import METRICS
from pait.report.stat_blocks import fmt_ci, fmt_n
from pait.report.tables import stage_label

HEADING = "Allocation: which layers a score prunes, and which weights within a layer"
EXPLAINED = ("Per unit, with M plain `magnitude`, T `magnitude` at the score's own per-layer kept counts (the "
             "transplant) and P the score: total = P − M, allocation = T − M (the score's per-layer densities alone), "
             "selection = P − T (its choice within each layer at those densities). Mean over units (sources x seeds) "
             "[95% CI, two-way cluster over sources and seeds].")


def allocation_blocks(results: pd.DataFrame) -> list[Block]:
    """The decomposition's table (a column per part), or nothing when the run has no transplant unit."""
    table = allocation_table(results)
    if table.empty:
        return []
    wide = table.pivot_table(index=["encoder", "score", "sparsity", "stage", "recovery", "metric"], columns="part",
                             values=["mean", "low", "high", "n", "sources", "seeds"], sort=False)
    rows = []
    for (encoder, score, sparsity, stage, recovery, metric), r in wide.iterrows():
        parts = [fmt_ci(r[("mean", p)], r[("low", p)], r[("high", p)], "signed")
                 for p in ("total", "allocation", "selection")]
        counts = pd.Series({f: int(r[(f, "total")]) for f in ("n", "sources", "seeds")})
        rows.append([encoder, score, f"{sparsity:.2%}", stage_label(stage, recovery), METRICS[metric],
                     fmt_n(counts), *parts])
    return [Heading(HEADING), Text(EXPLAINED),
            Table(["encoder", "score", "sparsity", "stage", "metric", "n", "total", "allocation", "selection"], rows)]
