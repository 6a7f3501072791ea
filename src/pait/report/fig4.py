"""Fig. 4: contours of the source and one transfer loss on the plane of [theta0, pruned, re-trained],
drawn from a cached surface (``pait landscape`` computes it)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pait.report.palette import UNPRUNED, score_colour  # noqa: E402
from pait.report.savefig import save_figure  # noqa: E402
from pait.report.surface import Surface  # noqa: E402

POINTS = (("θ₀ pre-trained", "*"), ("pruned θ₀⊙m", "s"), ("re-trained", "o"))


def draw_fig4(surface: Surface) -> plt.Figure:
    """One contour panel per evaluated task (source, transfer) with the three points marked: θ₀ black, the
    pruned and re-trained points in the score's colour (``palette.score_colour``)."""
    fig, axes = plt.subplots(1, len(surface.tasks), figsize=(5.2 * len(surface.tasks), 4.6), squeeze=False)
    a, b = np.meshgrid(surface.alphas, surface.betas)
    for t, (ax, task) in enumerate(zip(axes[0], surface.tasks)):
        z = np.log10(surface.loss[t])
        filled = ax.contourf(a, b, z, levels=20, cmap="viridis")
        ax.contour(a, b, z, levels=10, colors="w", linewidths=0.4)
        fig.colorbar(filled, ax=ax, label="log10 loss")
        colours = (UNPRUNED, score_colour(surface.meta["score"]), score_colour(surface.meta["score"]))
        for (label, marker), colour, (x, y) in zip(POINTS, colours, surface.points):
            ax.plot(x, y, marker, color=colour, ms=11, mec="w", label=label)
        role = "source" if t == 0 else "transfer"
        ax.set_title(f"{role}: {task}")
        ax.set_xlabel("plane direction 1")
        ax.set_ylabel("plane direction 2")
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="upper right")
    m = surface.meta
    fig.suptitle(f"Fig. 4: loss landscape of {m['encoder']} pruned by {m['score']} at {m['sparsity']:.0%} "
                 f"on source {m['source']} (BatchNorm: {m['bn']})", fontsize=9)
    fig.tight_layout()
    return fig


def plot_fig4(surface: Surface, path: Path) -> Path:
    """Draw Fig. 4 of ``surface`` into ``path`` (PNG)."""
    return save_figure(draw_fig4(surface), path)
