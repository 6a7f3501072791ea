"""Drawing a mean with its uncertainty: a 95% interval clipped to the metric's range, or, with few
replicates, the replicates themselves (a t interval on 2 or 3 values is mostly the t quantile's width)."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes

from pait.report.stats import MIN_INTERVAL_N

POINTS_UP_TO = MIN_INTERVAL_N - 1  # with this many replicates or fewer, plot them instead of an interval
ACCURACY = (0.0, 1.0)


def clipped(low, high, bounds: tuple[float, float] = ACCURACY) -> tuple[np.ndarray, np.ndarray]:
    """``low`` and ``high`` (arrays, NaN kept) clipped into ``bounds``."""
    lo, hi = bounds
    return np.clip(np.asarray(low, dtype=float), lo, hi), np.clip(np.asarray(high, dtype=float), lo, hi)


def error_lengths(mean, low, high, bounds: tuple[float, float] = ACCURACY) -> np.ndarray:
    """The (2, n) ``yerr`` of matplotlib for intervals clipped into ``bounds``; 0 where undefined."""
    mean = np.asarray(mean, dtype=float)
    lo, hi = clipped(low, high, bounds)
    return np.nan_to_num(np.vstack([mean - lo, hi - mean]).clip(min=0))


def replicate_points(ax: Axes, x: float, values, colour: str, width: float = 0.0) -> None:
    """The replicate values at ``x`` (spread over ``width``), as small dots edged in black."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    offsets = np.linspace(-width / 4, width / 4, len(values)) if len(values) > 1 else np.zeros(len(values))
    ax.scatter(x + offsets, values, s=9, color=colour, edgecolors="k", linewidths=0.4, zorder=3)
