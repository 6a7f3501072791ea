"""The transfer matrix: accuracy change vs the unpruned encoder, source task x evaluated task, as heatmaps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from pait.report.savefig import save_figure  # noqa: E402
from pait.report.tables import level_name  # noqa: E402

STAGE_TITLES = {"pruned": "zero-shot", "recovered": "recovered"}


def transfer_matrix(results: pd.DataFrame, encoder: str, score: str, sparsity: float, stage: str) -> pd.DataFrame:
    """Sources (rows) x targets (columns): mean accuracy at ``stage`` minus the unpruned accuracy."""
    keys = ["source", "target"]
    sel = results[(results.encoder == encoder) & (results.score == score) & (results.sparsity == sparsity)]
    acc = sel.pivot_table(index=keys, columns="stage", values="accuracy", aggfunc="mean")
    delta = (acc[stage] - acc["unpruned"]).rename("delta").reset_index()
    targets = list(dict.fromkeys(results.target))
    sources = [s for s in targets if s in set(delta.source)]
    return delta.pivot(index="source", columns="target", values="delta").reindex(index=sources, columns=targets)


def draw_transfer(results: pd.DataFrame, encoder: str, score: str) -> plt.Figure:
    """Heatmaps for one encoder and score: rows zero-shot / re-trained, one column per sparsity."""
    sparsities = sorted(results[(results.encoder == encoder) & (results.score == score)].sparsity.unique())
    matrices = {(st, sp): transfer_matrix(results, encoder, score, sp, st) for st in STAGE_TITLES for sp in sparsities}
    limit = max(0.05, max(float(np.nanmax(np.abs(m.to_numpy()))) for m in matrices.values()))
    first = next(iter(matrices.values()))
    w, h = 1.0 + 0.9 * first.shape[1], 0.9 + 0.6 * first.shape[0]
    fig, axes = plt.subplots(2, len(sparsities), figsize=(w * len(sparsities) + 1.5, 2 * h + 1.5), squeeze=False,
                             layout="constrained")
    for (stage, sparsity), m in matrices.items():
        ax = axes[list(STAGE_TITLES).index(stage), sparsities.index(sparsity)]
        image = ax.imshow(m.to_numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for i, j in np.ndindex(m.shape):
            ax.text(j, i, f"{m.iat[i, j]:+.2f}", ha="center", va="center", fontsize=7)
        for i, source in enumerate(m.index):  # outline the source task's own cell
            j = list(m.columns).index(source)
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="k", lw=1.5))
        ax.set_xticks(range(m.shape[1]), m.columns, rotation=30, ha="right", fontsize=7)
        ax.set_yticks(range(m.shape[0]), m.index, fontsize=7)
        ax.set_title(f"{STAGE_TITLES[stage]}, {sparsity:.1%}", fontsize=9)
        ax.set_xlabel("evaluated task", fontsize=7)
        ax.set_ylabel("source task", fontsize=7)
    fig.colorbar(image, ax=axes, label="accuracy − unpruned", shrink=0.8)
    fig.suptitle(f"Transfer matrix of {encoder} pruned by {score}: accuracy change vs unpruned, per "
                 f"{level_name(results)} (boxed: the source task itself)", fontsize=10)
    return fig


def plot_transfer(results: pd.DataFrame, encoder: str, score: str, path: Path) -> Path:
    """Draw the transfer matrix heatmaps of one encoder and score into ``path`` (PNG)."""
    return save_figure(draw_transfer(results, encoder, score), path)
