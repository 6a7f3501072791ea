"""The study's Fig. 3: per encoder, clusters by sparsity (or channel ratio) with one bar per score, in the
score's fixed colour, `magnitude` first; top row source accuracy, bottom row mean transfer accuracy; solid =
pruned zero-shot, hatched = recovered; the unpruned accuracy as a dashed line and chance (1 / number of
classes) as a dotted one; error bars = 95% CI over (source x seed) replicates clipped into [0, 1], or, with
at most ``POINTS_UP_TO`` replicates, the replicates themselves as dots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pait.report.palette import CHANCE, UNPRUNED, baseline_first, score_colour  # noqa: E402
from pait.report.replicates import POINTS_UP_TO, error_lengths, replicate_points  # noqa: E402
from pait.report.savefig import save_figure  # noqa: E402
from pait.report.tables import level_name, per_unit, stage_label, summary, without_after_none  # noqa: E402

ROWS = (("source_acc", "source task"), ("transfer_acc", "transfer tasks (mean)"))
HATCHES = (None, "//", "..", "xx", "\\\\", "++")


def draw_fig3(results: pd.DataFrame, chance: float | None = None) -> plt.Figure:
    """Fig. 3 for every encoder in ``results``: one column per encoder, rows source / mean transfer accuracy;
    ``chance`` (mean of 1 / number of classes over the tasks) draws the chance line when given."""
    table = without_after_none(summary(results))  # recovery none has no bar: it is the zero-shot bar
    units = without_after_none(per_unit(results))
    encoders = list(dict.fromkeys(table.encoder))
    pruned = set(table[table.stage != "unpruned"].score)
    scores = baseline_first(s for s in dict.fromkeys(results.score) if s in pruned)  # the run's order
    recovered = table[table.stage == "recovered"]
    # per score: the zero-shot bar, then one bar per recovery
    bars = [("pruned", None)] + [("recovered", r) for r in dict.fromkeys(recovered.recovery)]
    most = max(table.groupby("encoder").sparsity.nunique())
    fig_width = max(5.0, 0.25 * len(bars) * len(scores) * most + 1.5)
    fig, axes = plt.subplots(2, len(encoders), figsize=(fig_width * len(encoders), 7), squeeze=False)
    for col, encoder in enumerate(encoders):
        enc, enc_units = table[table.encoder == encoder], units[units.encoder == encoder]
        sparsities = sorted(enc.sparsity.unique())
        width = 0.8 / max(1, len(scores))
        for row, (metric, label) in enumerate(ROWS):
            ax = axes[row, col]
            unpruned = enc[enc.stage == "unpruned"][f"{metric}_mean"].mean()
            ax.axhline(unpruned, color=UNPRUNED, ls="--", lw=1, label="unpruned")
            if chance is not None:
                ax.axhline(chance, color=CHANCE, ls=":", lw=1.2, label=f"chance ({chance:.2f})")
            for i, score in enumerate(scores):
                x = np.arange(len(sparsities)) + (i - (len(scores) - 1) / 2) * width
                step = width / len(bars)
                for j, (stage, recovery) in enumerate(bars):
                    chosen = (enc.score == score) & (enc.stage == stage)
                    if recovery is not None:
                        chosen &= enc.recovery == recovery
                    s = enc[chosen].set_index("sparsity").reindex(sparsities)
                    mean, low, high, n = (s[f"{metric}_{k}"] for k in ("mean", "low", "high", "n"))
                    few = (n.fillna(0) <= POINTS_UP_TO).to_numpy()
                    yerr = np.where(few, np.nan, error_lengths(mean, low, high))  # few replicates: dots instead
                    xs = x + (j - (len(bars) - 1) / 2) * step
                    ax.bar(xs, mean, step * 0.95, yerr=yerr, color=score_colour(score),
                           alpha=0.9 if stage == "pruned" else 0.45, hatch=HATCHES[j % len(HATCHES)], edgecolor="k",
                           lw=0.5, capsize=2, label=f"{score} ({stage_label(stage, recovery)})")
                    chosen = (enc_units.score == score) & (enc_units.stage == stage)
                    if recovery is not None:
                        chosen &= enc_units.recovery == recovery
                    for k in np.flatnonzero(few):
                        values = enc_units[chosen & (enc_units.sparsity == sparsities[k])][metric]
                        replicate_points(ax, xs[k], values, score_colour(score), step)
            ax.set_xticks(np.arange(len(sparsities)), [f"{s:.1%}" for s in sparsities])
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"accuracy, {label}")
            ax.set_title(f"{encoder}: {label}", fontsize=10)
            if row == 1:
                ax.set_xlabel(level_name(results))
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not over them
    fig.tight_layout()
    return fig


def plot_fig3(results: pd.DataFrame, path: Path, chance: float | None = None) -> Path:
    """Draw Fig. 3 into ``path`` (PNG)."""
    return save_figure(draw_fig3(results, chance), path, dpi=120)
