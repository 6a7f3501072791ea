"""The K-FAC damping check out of sample, from its committed results (docs/findings-kfac-damping.md).

The default (relative 1.0) was chosen on one replicate (source digits-0-4, seed 0, sparsity 0.4). The runs
of study/efficientnet_lite0_kfac_damping_oos (relative 0.1, 1, 10; the three other sources x seeds 1-3;
zero-shot) are in docs/findings/study-efficientnet_lite0_kfac_damping_oos_<damping>/. Prints, per sparsity
and damping, kfac's zero-shot mean transfer accuracy, its paired difference to magnitude and to damping 1.0
(two-way cluster 95% intervals over sources and seeds) and the verdict "at least as good as 1.0".

    python scripts/kfac_damping_oos.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pait.report.run_folder import read_results
from pait.report.stats import accuracy_ci, crossed_paired, verdict
from pait.report.tables import per_unit

FINDINGS = Path(__file__).resolve().parent.parent / "docs" / "findings"
DAMPINGS = ("0.1", "1", "10")
KEYS = ["source", "seed", "sparsity"]


def zero_shot_units() -> pd.DataFrame:
    """Per unit of the three runs: zero-shot source and mean transfer accuracy, with its run's damping."""
    runs = []
    for d in DAMPINGS:
        units = per_unit(read_results(FINDINGS / f"study-efficientnet_lite0_kfac_damping_oos_{d}"))
        runs.append(units[units.stage == "pruned"].assign(damping=d))
    return pd.concat(runs, ignore_index=True)


def fmt(p) -> str:
    return f"{p.mean:+.3f} [{p.low:+.3f}, {p.high:+.3f}]"


def main() -> None:
    units = zero_shot_units()
    magnitude = units[(units.score == "magnitude") & (units.damping == "1")].set_index(KEYS).transfer_acc
    default = units[(units.score == "kfac") & (units.damping == "1")].set_index(KEYS).transfer_acc
    print("| sparsity | damping (relative) | kfac mean transfer acc. [95% CI] | kfac − magnitude | kfac(d) − kfac(1.0) "
          "| d at least as good as 1.0 |")
    print("|---|---|---|---|---|---|")
    for sparsity in sorted(units.sparsity.unique()):
        for d in DAMPINGS:
            kfac = units[(units.score == "kfac") & (units.damping == d)].set_index(KEYS).transfer_acc
            kfac = kfac.xs(sparsity, level="sparsity")
            sources, seeds = kfac.index.get_level_values("source"), kfac.index.get_level_values("seed")
            ci = accuracy_ci(kfac, sources, seeds)
            vs_mag = crossed_paired(kfac - magnitude.xs(sparsity, level="sparsity"), sources, seeds)
            vs_default = crossed_paired(kfac - default.xs(sparsity, level="sparsity"), sources, seeds)
            same = d == "1"
            print(f"| {sparsity:g} | {d} | {ci.mean:.3f} [{ci.low:.3f}, {ci.high:.3f}] (n = {ci.n}) | {fmt(vs_mag)} | "
                  f"{'—' if same else fmt(vs_default)} | {'—' if same else verdict(vs_default.low, vs_default.high)} |")


if __name__ == "__main__":
    main()
