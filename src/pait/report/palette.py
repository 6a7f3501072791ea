"""One colour per score, the same in every figure of the project, and the order scores are shown in.

Known scores have fixed colours; any other name gets a deterministic one from ``EXTRA`` (by a hash of the
name, so it is the same in every process and every figure). The baseline (`magnitude`) comes first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

BASELINE = "magnitude"
UNPRUNED = "#000000"  # the unpruned reference line
CHANCE = "#9a9a9a"  # the chance line (1 / number of classes)
SCORE_COLOURS = {
    "magnitude": "#404040",
    "fisher_diag": "#1f77b4",
    "kfac": "#ff7f0e",
    "snip": "#2ca02c",
    "grasp": "#d62728",
    "px": "#9467bd",
    "synflow": "#8c564b",
    "random": "#bcbd22",
    "taylor": "#17becf",
    "hessian": "#e377c2",
    "lamp": "#393b79",
    "magnitude_uniform": "#a0a0a0",
}
# for names not above: colours unlike the fixed ones (matplotlib's tab20b / Dark2 entries)
EXTRA = ("#637939", "#8c6d31", "#843c39", "#7b4173", "#5254a3", "#1b9e77", "#d95f02", "#7570b3", "#e7298a",
         "#66a61e", "#e6ab02", "#a6761d")


def score_colour(score: str) -> str:
    """The colour of ``score`` in every figure (hex RGB)."""
    if score in SCORE_COLOURS:
        return SCORE_COLOURS[score]
    digest = hashlib.sha256(score.encode()).digest()
    return EXTRA[int.from_bytes(digest[:4], "big") % len(EXTRA)]


def baseline_first(scores: Iterable[str], baseline: str = BASELINE) -> list[str]:
    """The distinct ``scores`` in their order, with ``baseline`` (when present) moved first."""
    names = list(dict.fromkeys(scores))
    return [baseline] * (baseline in names) + [s for s in names if s != baseline]
