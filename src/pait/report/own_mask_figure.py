"""The P1 figure: own-mask minus other-source-mask accuracy on each target, per score (fixed colours) against
sparsity, one panel per encoder and stage, with the non-inferiority margin drawn."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pait.report.palette import baseline_first, score_colour  # noqa: E402
from pait.report.replicates import POINTS_UP_TO, error_lengths, replicate_points  # noqa: E402
from pait.report.savefig import save_figure  # noqa: E402
from pait.report.stats import MARGIN  # noqa: E402
from pait.report.tables import stage_label  # noqa: E402

GAP_RANGE = (-1.0, 1.0)  # a difference of two accuracies


def draw_own_other(table: pd.DataFrame, pairs: pd.DataFrame, level: str = "sparsity",
                   margin: float = MARGIN) -> plt.Figure:
    """From ``own_mask.own_other_table`` and its ``pairs``: mean gap with its t 95% CI (clipped into [-1, 1]),
    or the (target, seed) gaps as dots with at most ``POINTS_UP_TO`` of them."""
    panels = list(table[["encoder", "stage", "recovery"]].drop_duplicates().itertuples(index=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(7.5, 4.6 * len(panels) + 1.8), 4), squeeze=False, sharey=True)
    for ax, (encoder, stage, recovery) in zip(axes[0], panels):
        panel = table[(table.encoder == encoder) & (table.stage == stage) & (table.recovery == recovery)]
        scores = baseline_first(panel.score)  # the table's order: the run's, baseline first
        offsets = np.linspace(-0.01, 0.01, len(scores)) if len(scores) > 1 else [0.0]
        for score, dx in zip(scores, offsets):
            g = panel[panel.score == score].sort_values("sparsity")
            x, colour, few = g.sparsity.to_numpy() + dx, score_colour(score), g.n.to_numpy() <= POINTS_UP_TO
            yerr = np.where(few, np.nan, error_lengths(g["mean"], g.low, g.high, GAP_RANGE))  # dots instead
            ax.errorbar(x, g["mean"], yerr=yerr, fmt="o-", color=colour, capsize=2, ms=4, label=score)
            for xi, sparsity in zip(x[few], g.sparsity[few]):
                sel = pairs[(pairs.encoder == encoder) & (pairs.score == score) & (pairs.stage == stage)
                            & (pairs.recovery == recovery) & (pairs.sparsity == sparsity)]
                replicate_points(ax, xi, sel.gap_other, colour)
        ax.axhline(0, color="k", lw=0.6)
        ax.axhline(margin, color="k", ls=":", lw=1, label=f"margin (+{margin:g})")
        ax.set_title(f"{encoder}, {stage_label(stage, recovery)}", fontsize=9)
        ax.set_xlabel(level)
    axes[0, 0].set_ylabel("own mask − other sources' masks\n(accuracy on the target)")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: labels[i].startswith("margin"))  # the scores first
    axes[0, -1].legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, loc="upper left",
                       bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"P1: target pruned with its own data minus with other sources' (holds below +{margin:g})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_own_other(table: pd.DataFrame, pairs: pd.DataFrame, path: Path, level: str = "sparsity") -> Path:
    """Draw the P1 own-vs-other figure into ``path`` (PNG)."""
    return save_figure(draw_own_other(table, pairs, level), path)
