"""Coverage of 95% intervals for the mean of crossed (source x seed) replicates, by simulation.

Each draw is a table ``y[i, j] = a_i + b_j + e_ij`` (true mean 0) of I sources by J seeds, with a
source effect ``a ~ N(0, s_source²)``, a seed effect ``b ~ N(0, s_seed²)`` (one seed shares every
task's split and head) and interaction noise ``e ~ N(0, s_noise²)``. For each interval method: the
share of draws whose interval contains 0, and the mean width. Methods:

- ``naive_t``: Student t over all I·J values as if independent (the report's old means);
- ``union_boot_t``: the union of the percentile bootstrap over units and ``naive_t`` (the old verdicts);
- ``source_cluster_t``: t over the I source means (df I − 1), seed effect ignored;
- ``product_boot``: Owen's product ("pigeonhole") bootstrap, sources and seeds resampled independently
  with replacement, percentile interval;
- ``cgm_t``: ``stats.crossed_ci``, the two-way cluster variance (Cameron, Gelbach & Miller) with t on
  min(I, J) − 1 df;
- ``cgm_satterthwaite``: the same variance with Welch-Satterthwaite df from its source and seed parts,
  ``(V_s + V_b)² / (V_s² / (I − 1) + V_b² / (J − 1))``;
- ``anova_satterthwaite``: the crossed random-effects ANOVA estimate ``(MS_A + MS_B − MS_E) / N`` with
  Satterthwaite df (balanced tables only).

    PYTHONPATH=src python bench/crossed_coverage.py [--draws 4000] [--resamples 1000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from the source tree

from pait.report.stats import crossed_ci, mean_ci  # noqa: E402

DESIGNS = ((4, 3), (10, 3))
# (s_source², s_seed², s_noise²)
RATIOS = {"source-dominant": (1.0, 0.1, 0.2), "seed-dominant": (0.1, 1.0, 0.2), "balanced": (1.0, 1.0, 1.0),
          "noise-dominant": (0.1, 0.1, 1.0), "noise-only": (0.0, 0.0, 1.0), "source-only": (1.0, 0.0, 0.1)}
T975 = lambda df: float(stats.t.ppf(0.975, df))  # noqa: E731


def product_boot(y: np.ndarray, rng: np.random.Generator, resamples: int) -> tuple[float, float]:
    i, j = y.shape
    rows = rng.multinomial(i, np.full(i, 1 / i), resamples)  # how often each source is drawn
    cols = rng.multinomial(j, np.full(j, 1 / j), resamples)
    means = np.einsum("bi,ij,bj->b", rows, y, cols) / (i * j)
    return tuple(np.quantile(means, [0.025, 0.975]))


def union_boot_t(y: np.ndarray, rng: np.random.Generator, resamples: int) -> tuple[float, float]:
    x = y.reshape(-1)
    counts = rng.multinomial(len(x), np.full(len(x), 1 / len(x)), resamples)
    lo, hi = np.quantile(counts @ x / len(x), [0.025, 0.975])
    t = mean_ci(x)
    return min(lo, t.low), max(hi, t.high)


def anova_satterthwaite(y: np.ndarray) -> tuple[float, float]:
    i, j = y.shape
    m = y.mean()
    rows, cols = y.mean(1), y.mean(0)
    ms_a = j * np.sum((rows - m) ** 2) / (i - 1)
    ms_b = i * np.sum((cols - m) ** 2) / (j - 1)
    ms_e = np.sum((y - rows[:, None] - cols[None, :] + m) ** 2) / ((i - 1) * (j - 1))
    v = ms_a + ms_b - ms_e
    if v <= 0:
        v = max(ms_a, ms_b)
    df = v ** 2 / (ms_a ** 2 / (i - 1) + ms_b ** 2 / (j - 1) + ms_e ** 2 / ((i - 1) * (j - 1)))
    half = T975(df) * np.sqrt(v / (i * j))
    return m - half, m + half


def cgm_satterthwaite(y: np.ndarray) -> tuple[float, float]:
    i, j = y.shape
    e = y - y.mean()
    v_s = i / (i - 1) * np.sum(e.sum(1) ** 2) / e.size ** 2
    v_b = j / (j - 1) * np.sum(e.sum(0) ** 2) / e.size ** 2
    v_cell = e.size / (e.size - 1) * np.sum(e ** 2) / e.size ** 2
    v = v_s + v_b - v_cell
    v = v if v > 0 else max(v_s, v_b)
    df = (v_s + v_b) ** 2 / (v_s ** 2 / (i - 1) + v_b ** 2 / (j - 1))
    half = T975(df) * np.sqrt(v)
    return y.mean() - half, y.mean() + half


def intervals(y: np.ndarray, rng: np.random.Generator, resamples: int) -> dict[str, tuple[float, float]]:
    i, j = y.shape
    sources, seeds = np.repeat(np.arange(i), j), np.tile(np.arange(j), i)
    naive, cgm, by_source = mean_ci(y.reshape(-1)), crossed_ci(y.reshape(-1), sources, seeds), mean_ci(y.mean(1))
    return {"naive_t": (naive.low, naive.high), "union_boot_t": union_boot_t(y, rng, resamples),
            "source_cluster_t": (by_source.low, by_source.high), "product_boot": product_boot(y, rng, resamples),
            "cgm_t": (cgm.low, cgm.high), "cgm_satterthwaite": cgm_satterthwaite(y),
            "anova_satterthwaite": anova_satterthwaite(y)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/crossed_coverage.json")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    rows = []
    for i, j in DESIGNS:
        for name, (va, vb, ve) in RATIOS.items():
            hits: dict[str, int] = {}
            widths: dict[str, float] = {}
            for _ in range(args.draws):
                y = (rng.normal(0, np.sqrt(va), (i, 1)) + rng.normal(0, np.sqrt(vb), (1, j))
                     + rng.normal(0, np.sqrt(ve), (i, j)))
                for method, (lo, hi) in intervals(y, rng, args.resamples).items():
                    hits[method] = hits.get(method, 0) + int(lo <= 0 <= hi)
                    widths[method] = widths.get(method, 0.0) + (hi - lo)
            for method in hits:
                rows.append({"design": f"{i}x{j}", "ratio": name, "variances": [va, vb, ve], "method": method,
                             "coverage": hits[method] / args.draws, "mean_width": widths[method] / args.draws})
            print(f"{i}x{j} {name:16s} " + "  ".join(f"{m} {hits[m] / args.draws:.3f}" for m in hits), flush=True)
    result = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "draws": args.draws, "resamples": args.resamples, "seed": args.seed,
              "seconds": round(time.perf_counter() - start, 1), "rows": rows}
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
