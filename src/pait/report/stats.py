"""Statistics of a study: intervals over replicates, paired comparisons and claim verdicts.

A replicate is one (source x seed) unit, and units are crossed: units of one source share the source,
units of one seed share every task's split and head. The report's intervals are therefore two-way
cluster intervals (``crossed_ci``, ``crossed_paired``: Cameron-Gelbach-Miller variance, Student t on
min(G_source, G_seed) − 1 df); paired p-values (Wilcoxon signed-rank, sign test, from scipy) are shown
for information. Verdicts within one table of settings get Holm's correction beside the raw ones
(``holm_verdicts``); a comparison of two near-chance encoders is ``collapsed``; accuracy intervals are
clipped to [0, 1] (``accuracy_ci``) and figures draw fewer than ``MIN_INTERVAL_N`` replicates as points (``replicates``).
The transfer tasks are a third shared factor (each task is in the transfer mean of every source but its
own); it is not resampled: the intervals are for the study's own set of tasks.

Verdict rule for a claim "A is at least as good as B" (difference d = A - B per unit, tolerated
loss ``margin`` >= 0, by default one accuracy point): **holds** when the whole verdict interval of
the mean difference lies at or above ``-margin``; **does not hold** when it lies entirely below
``-margin``; **unclear** otherwise, and always when it is undefined. A count of negative pairs never
decides a verdict.

Why the two-way cluster t interval (``bench/crossed_coverage.py``, 4,000 draws per row, true mean 0,
y = source effect + seed effect + noise; coverage of nominal 95% intervals):

    design  variances (source, seed, noise)  naive t  union boot+t  product boot  ANOVA-Satt.  CGM t  width CGM/naive
    4x3     source-dominant (1, 0.1, 0.2)     0.723     0.723         0.842         0.977      0.977   3.0
    4x3     seed-dominant   (0.1, 1, 0.2)     0.643     0.643         0.807         0.974      0.961   3.6
    4x3     balanced        (1, 1, 1)         0.746     0.746         0.871         0.991      0.976   3.0
    4x3     noise-only      (0, 0, 1)         0.950     0.950         0.974         1.000      0.974   2.0
    10x3    seed-dominant   (0.1, 1, 0.2)     0.445     0.446         0.782         0.941      0.957   6.2
    10x3    balanced        (1, 1, 1)         0.612     0.613         0.861         0.948      0.981   4.3
    10x3    noise-only      (0, 0, 1)         0.947     0.947         0.988         0.998      0.979   2.0

Over all 12 rows (also noise-dominant and source-only) the CGM t interval covered 95.7-99.6% (mean 97.6%);
every other method fell below 95% somewhere: the old intervals (t over units, and the verdicts' union of
the percentile bootstrap and t) to 45%, Owen's product bootstrap to 78%, the crossed-ANOVA estimate with
Satterthwaite df to 94.1%, and CGM with Satterthwaite df to 88%. The price is width where there is no
seed effect (twice the naive interval in the noise-only rows, t on 2 df with 3 seeds). The percentile
bootstrap over units (``bootstrap_ci``, kept for callers) is too narrow on few pairs besides: on
independent normal differences it covered 51% at n = 2, 85% at n = 6 and 92% at n = 12.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
MARGIN = 0.01
HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "unclear"


@dataclass(frozen=True)
class MeanCI:
    """Mean of ``n`` replicates and its confidence interval (NaN bounds when ``n`` < 2)."""

    mean: float
    low: float
    high: float
    n: int


@dataclass(frozen=True)
class Paired:
    """Paired comparison of two methods: ``n`` pairs, mean difference, its bootstrap and t CIs, p-values."""

    n: int
    mean: float
    low: float
    high: float
    t_low: float
    t_high: float
    wilcoxon_p: float
    sign_p: float

    def verdict_interval(self) -> tuple[float, float]:
        """The union of the bootstrap and Student-t intervals (NaN when either is undefined)."""
        bounds = (self.low, self.t_low, self.high, self.t_high)
        if any(np.isnan(b) for b in bounds):
            return float("nan"), float("nan")
        return min(self.low, self.t_low), max(self.high, self.t_high)


def _values(values) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def mean_ci(values, level: float = LEVEL) -> MeanCI:
    """Mean and Student-t interval ``mean ± t_{(1+level)/2, n-1} · s / sqrt(n)``; bounds NaN for n < 2."""
    x = _values(values)
    n = len(x)
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return MeanCI(mean, float("nan"), float("nan"), n)
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return MeanCI(mean, mean - half, mean + half, n)


def bootstrap_ci(diffs, level: float = LEVEL, resamples: int = RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (fixed seed, so reports are reproducible); NaN for n < 2."""
    x = _values(diffs)
    if len(x) < 2:
        return float("nan"), float("nan")
    res = stats.bootstrap((x,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                          vectorized=True, batch=1_000, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def wilcoxon_p(diffs) -> float:
    """Two-sided Wilcoxon signed-rank p-value (zero differences dropped); 1 if all are zero, NaN for n < 2."""
    x = _values(diffs)
    if len(x) < 2:
        return float("nan")
    if not np.any(x != 0):
        return 1.0
    return float(stats.wilcoxon(x).pvalue)


def sign_test_p(diffs) -> float:
    """Two-sided sign-test p-value: positives among non-zero differences ~ Binomial(k, 1/2); NaN for n < 2."""
    x = _values(diffs)
    if len(x) < 2:
        return float("nan")
    nonzero = int(np.count_nonzero(x))
    if nonzero == 0:
        return 1.0
    return float(stats.binomtest(int((x > 0).sum()), nonzero, 0.5).pvalue)


def paired(diffs) -> Paired:
    """Everything the report shows for one set of paired differences (method minus baseline, per unit)."""
    x = _values(diffs)
    low, high = bootstrap_ci(x)
    t = mean_ci(x)
    return Paired(len(x), t.mean, low, high, t.low, t.high, wilcoxon_p(x), sign_test_p(x))


def verdict(low: float, high: float, margin: float = MARGIN) -> str:
    """The module's verdict rule for "at least as good": the interval [low, high] against ``-margin``."""
    if np.isnan(low) or np.isnan(high):
        return UNCLEAR
    if low >= -margin:
        return HOLDS
    if high < -margin:
        return FAILS
    return UNCLEAR


# --- Crossed replicates: (source x seed) units share their source and their seed ---


@dataclass(frozen=True)
class CrossedCI:
    """Mean of ``n`` crossed replicates, its two-way cluster interval, standard error and t degrees of freedom.

    ``sources`` and ``seeds`` count the distinct levels; bounds are NaN when no interval exists (one cell)."""

    mean: float
    low: float
    high: float
    n: int
    se: float
    df: int
    sources: int
    seeds: int


def _cluster_variance(e: np.ndarray, codes: np.ndarray) -> tuple[float, int]:
    """Cluster-robust variance of a mean, ``G / (G - 1) · Σ_g (Σ_{i in g} e_i)² / N²``, and the number G of clusters."""
    sums = np.bincount(codes, weights=e)
    g = len(sums)
    return (g / (g - 1) * float(np.sum(sums ** 2)) / len(e) ** 2 if g > 1 else 0.0), g


def crossed_ci(values, sources, seeds, level: float = LEVEL) -> CrossedCI:
    """Mean and two-way cluster 95% interval of replicates crossed by source and seed.

    Variance of the mean by Cameron, Gelbach & Miller (2011): ``V = V_source + V_seed − V_cell``, each a
    cluster-robust variance (``_cluster_variance``; cells are (source, seed) pairs), and ``max(V_source,
    V_seed)`` when that difference is not positive; the interval is ``mean ± t_{df} · sqrt(V)`` with
    ``df = min(G_source, G_seed) − 1`` clusters. With one level of a factor it is the one-way cluster
    interval on the other (``df = G − 1``), which for one replicate per cell is exactly ``mean_ci``: with one
    seed the seed's effect is part of what is estimated, not of the error. NaN bounds with one cell.
    Chosen by the coverage simulation in ``bench/crossed_coverage.py`` (module docstring: 95.7-99.6%).
    """
    x = _values(values)
    n = len(x)
    src = np.unique(np.asarray(sources).reshape(-1), return_inverse=True)[1]
    sd = np.unique(np.asarray(seeds).reshape(-1), return_inverse=True)[1]
    if not len(src) == len(sd) == n:
        raise ValueError(f"crossed_ci: {n} values but {len(src)} sources and {len(sd)} seeds")
    mean = float(x.mean()) if n else float("nan")
    g_src, g_seed = len(np.unique(src)), len(np.unique(sd))
    nan = float("nan")
    if n < 2 or (g_src < 2 and g_seed < 2):
        return CrossedCI(mean, nan, nan, n, nan, 0, g_src, g_seed)
    e = x - mean
    v_src, _ = _cluster_variance(e, src)
    v_seed, _ = _cluster_variance(e, sd)
    if g_src > 1 and g_seed > 1:
        v_cell, _ = _cluster_variance(e, src * g_seed + sd)
        v = v_src + v_seed - v_cell
        v = v if v > 0 else max(v_src, v_seed)
        df = min(g_src, g_seed) - 1
    else:
        v, df = v_src + v_seed, max(g_src, g_seed) - 1  # one of the two is 0
    se = float(np.sqrt(v))
    half = float(stats.t.ppf((1 + level) / 2, df)) * se
    return CrossedCI(mean, mean - half, mean + half, n, se, df, g_src, g_seed)


@dataclass(frozen=True)
class CrossedPaired:
    """Paired differences of crossed units: their ``crossed_ci`` interval, the Wilcoxon and sign-test p-values."""

    n: int
    sources: int
    seeds: int
    mean: float
    low: float
    high: float
    se: float
    df: int
    wilcoxon_p: float
    sign_p: float


def crossed_paired(diffs, sources, seeds) -> CrossedPaired:
    """Everything the report shows for paired differences (method minus baseline) of (source x seed) units."""
    x = _values(diffs)
    ci = crossed_ci(x, sources, seeds)
    return CrossedPaired(ci.n, ci.sources, ci.seeds, ci.mean, ci.low, ci.high, ci.se, ci.df, wilcoxon_p(x),
                         sign_test_p(x))


def margin_p_values(mean: float, se: float, df: int, margin: float = MARGIN) -> tuple[float, float]:
    """One-sided t-test p-values against ``-margin``: (p that "holds", p that "does not hold").

    The first tests H0 "mean difference < −margin", the second H0 "mean difference ≥ −margin"; with the
    interval ``mean ± t_df · se`` at level 95%, ``verdict`` says holds exactly when the first is ≤ 0.025 and
    does not hold when the second is. ``se = 0`` gives 0 or 1; NaN when no interval exists."""
    if np.isnan(se) or np.isnan(mean) or df < 1:
        return float("nan"), float("nan")
    gap = mean + margin
    if se == 0:
        return (0.0, 1.0) if gap >= 0 else (1.0, 0.0)
    t = gap / se
    return float(stats.t.sf(t, df)), float(stats.t.cdf(t, df))


def holm(pvalues) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values of one family; NaN entries are left out of the family and stay NaN.

    Sorted p_(1) <= ... <= p_(m): adjusted p_(k) = max_{i<=k} min(1, (m − i + 1) · p_(i)). Hand-written: scipy
    has no Holm adjustment and statsmodels is not a dependency."""
    p = _values(pvalues)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return out


def holm_verdicts(p_holds, p_fails, level: float = LEVEL) -> list[str]:
    """Verdicts of one family of settings with Holm's control of the family-wise error rate.

    "holds" where the Holm-adjusted p that it holds is <= (1 − level) / 2, "does not hold" where the adjusted p
    that it does not hold is, "unclear" otherwise: each direction at 2.5%, so the chance of any wrong
    verdict in the family is at most 5% (every raw verdict is the same rule without adjustment)."""
    alpha = (1 - level) / 2
    holds, fails = holm(p_holds), holm(p_fails)
    return [HOLDS if h <= alpha else FAILS if f <= alpha else UNCLEAR for h, f in zip(holds, fails)]


COLLAPSE_MARGIN = 0.05
COLLAPSED = "collapsed"


def collapsed(mean_a: float, mean_b: float, chance: float, margin: float = COLLAPSE_MARGIN) -> bool:
    """Both sides' mean accuracies below ``chance + margin`` (5 points over 1 / classes): a comparison of two
    encoders that no longer tell the classes apart, whatever its interval says. False when chance is unknown."""
    return bool(not np.isnan(chance) and mean_a < chance + margin and mean_b < chance + margin)


def accuracy_ci(values, sources=None, seeds=None) -> MeanCI:
    """The mean of accuracies and its 95% interval (``crossed_ci`` when sources and seeds are given, else
    ``mean_ci``) clipped to [0, 1].

    Clipping keeps the coverage: the true mean lies in [0, 1], so it is in the clipped interval exactly when it
    is in the unclipped one; only the impossible part is cut. (A logit-scale interval would change the coverage
    and is undefined on an all-ones or all-zeros sample, which happens at 0% and at chance.)"""
    ci = mean_ci(values) if sources is None else crossed_ci(values, sources, seeds)
    if np.isnan(ci.low):
        return MeanCI(ci.mean, ci.low, ci.high, ci.n)
    return MeanCI(ci.mean, max(ci.low, 0.0), min(ci.high, 1.0), ci.n)


MIN_INTERVAL_N = 4  # fewer replicates: figures draw them as points (a t interval on 1-2 df spans most of the axis)
