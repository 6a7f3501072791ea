"""The study's Fig. 3: per encoder, clusters by sparsity with one bar per score; top row source
accuracy, bottom row mean transfer accuracy; solid = pruned zero-shot, hatched = re-trained; the
unpruned accuracy as a dashed reference line; error bars = 95% CI over (source x seed) replicates
(none where a bar has a single replicate)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pait.report.savefig import save_figure  # noqa: E402
from pait.report.tables import stage_label, summary, without_after_none  # noqa: E402

ROWS = (("source_acc", "source accuracy"), ("transfer_acc", "mean transfer accuracy"))
HATCHES = (None, "//", "..", "xx", "\\\\", "++")


def draw_fig3(results: pd.DataFrame) -> plt.Figure:
    """Fig. 3 for every encoder in ``results``: one column per encoder, rows source / mean transfer accuracy."""
    table = without_after_none(summary(results))  # recovery none has no bar: it is the zero-shot bar
    encoders = list(dict.fromkeys(table.encoder))
    scores = list(dict.fromkeys(table[table.stage != "unpruned"].score))
    recovered = table[table.stage == "recovered"]
    # per score: the zero-shot bar, then one bar per recovery
    bars = [("pruned", None)] + [("recovered", r) for r in dict.fromkeys(recovered.recovery)]
    colors = plt.get_cmap("tab10")
    most = max(table.groupby("encoder").sparsity.nunique())
    fig_width = max(5.0, 0.25 * len(bars) * len(scores) * most + 1.5)
    fig, axes = plt.subplots(2, len(encoders), figsize=(fig_width * len(encoders), 7), squeeze=False)
    for col, encoder in enumerate(encoders):
        enc = table[table.encoder == encoder]
        sparsities = sorted(enc.sparsity.unique())
        width = 0.8 / max(1, len(scores))
        for row, (metric, label) in enumerate(ROWS):
            ax = axes[row, col]
            unpruned = enc[enc.stage == "unpruned"][f"{metric}_mean"].mean()
            ax.axhline(unpruned, color="k", ls="--", lw=1, label="unpruned")
            for i, score in enumerate(scores):
                x = np.arange(len(sparsities)) + (i - (len(scores) - 1) / 2) * width
                step = width / len(bars)
                for j, (stage, recovery) in enumerate(bars):
                    chosen = (enc.score == score) & (enc.stage == stage)
                    if recovery is not None:
                        chosen &= enc.recovery == recovery
                    s = enc[chosen].set_index("sparsity").reindex(sparsities)
                    mean, low, high = (s[f"{metric}_{k}"] for k in ("mean", "low", "high"))
                    yerr = [(mean - low).fillna(0), (high - mean).fillna(0)]
                    ax.bar(x + (j - (len(bars) - 1) / 2) * step, mean, step * 0.95, yerr=yerr, color=colors(i),
                           alpha=0.9 if stage == "pruned" else 0.45, hatch=HATCHES[j % len(HATCHES)], edgecolor="k",
                           lw=0.5, capsize=2, label=f"{score} ({stage_label(stage, recovery)})")
            ax.set_xticks(np.arange(len(sparsities)), [f"{s:.1%}" for s in sparsities])
            ax.set_ylim(0, 1)
            ax.set_ylabel(label)
            if row == 0:
                ax.set_title(encoder)
            else:
                ax.set_xlabel("sparsity")
    axes[0, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not over them
    fig.tight_layout()
    return fig


def plot_fig3(results: pd.DataFrame, path: Path) -> Path:
    """Draw Fig. 3 into ``path`` (PNG)."""
    return save_figure(draw_fig3(results), path, dpi=120)
