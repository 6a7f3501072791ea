"""P1 diagnostics: do masks and scores computed on different source tasks agree?

For each encoder, score and sparsity and each pair of units: the IoU of the *pruned* sets,
``|P_a ∩ P_b| / |P_a ∪ P_b|`` over all prunable weights, and the Spearman rank correlation of the two
units' scores (average ranks for ties). Pairs are of two kinds: two sources with the same seed (``pair``
= ``sources``), and one source with two seeds (``seeds``: the same task on other calibration images, the
level that agreement across sources can at best reach). Two independent random masks at sparsity p have
expected IoU ``p / (2 - p)``. Masks come from the unit stage directories and scores from the scores stage
directories listed in the run's ``units.json``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pait.cache import check_stage  # noqa: E402
from pait.report.palette import baseline_first, score_colour  # noqa: E402
from pait.report.run_folder import read_json  # noqa: E402
from pait.report.savefig import save_figure  # noqa: E402
from pait.tensorfiles import read_safetensors  # noqa: E402

ACROSS_SOURCES, ACROSS_SEEDS = "sources", "seeds"
P1_COLUMNS = ["encoder", "score", "sparsity", "pair", "source_a", "source_b", "seed_a", "seed_b", "iou", "iou_random",
              "spearman"]


def _flat(path: Path) -> np.ndarray:
    tensors = read_safetensors(path)  # a damaged or missing stage file is named in one line
    check_stage(path.parent)  # a file overwritten with as many bytes still reads
    return np.concatenate([tensors[k].reshape(-1).numpy() for k in sorted(tensors)])


def pruned_iou(kept_a: np.ndarray, kept_b: np.ndarray) -> float:
    """IoU of the pruned sets of two flat keep-masks (1.0 when neither prunes anything)."""
    pa, pb = ~kept_a.astype(bool), ~kept_b.astype(bool)
    union = int((pa | pb).sum())
    return float((pa & pb).sum()) / union if union else 1.0


def average_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x`` (1-based, ties share their average rank)."""
    return pd.Series(x).rank(method="average").to_numpy()


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation: Pearson correlation of average ranks."""
    return float(np.corrcoef(average_ranks(x), average_ranks(y))[0, 1])


class _Ranks:
    """Average ranks of score files, the ``size`` last ranked kept (a ViT-S's ranks take 170 MB each)."""

    def __init__(self, run_dir: Path, size: int):
        self.run_dir, self.size, self.kept = run_dir, max(2, size), {}

    def __call__(self, folder: str) -> np.ndarray:
        if folder not in self.kept:
            if len(self.kept) >= self.size:
                del self.kept[next(iter(self.kept))]
            self.kept[folder] = average_ranks(_flat(self.run_dir / folder / "scores.safetensors"))
        return self.kept[folder]


def unit_pairs(units: pd.DataFrame) -> list[tuple[str, object, object]]:
    """The (kind, unit a, unit b) pairs of one (encoder, score): sources within a seed, then seeds within a
    source (in this order, so that a few cached ranks serve them)."""
    pairs = []
    for kind, within in ((ACROSS_SOURCES, "seed"), (ACROSS_SEEDS, "source")):
        for _, group in units.groupby(within, sort=False):
            pairs += [(kind, a, b) for a, b in itertools.combinations(group.itertuples(), 2)]
    return pairs


def mask_agreement(run_dir: Path) -> pd.DataFrame:
    """One row per (encoder, score, sparsity) and pair of units (two sources with one seed, or one source with
    two seeds); empty without ``units.json`` or with a single unit per setting."""
    index_path = run_dir / "units.json"
    if not index_path.is_file():
        return pd.DataFrame(columns=P1_COLUMNS)
    units = pd.DataFrame(read_json(index_path, list, ("encoder", "score", "sparsity", "source", "unit_dir",
                                                      "scores_dir")))
    if "seed" not in units:
        units = units.assign(seed=0)
    units = units.drop_duplicates(["encoder", "score", "sparsity", "source", "seed"])  # recoveries share the mask
    rows = []
    for (encoder, score), by_score in units.groupby(["encoder", "score"], sort=False):
        one = by_score.drop_duplicates(["source", "seed"])  # one score file serves every sparsity: rank it once
        ranks = _Ranks(run_dir, max(one.source.nunique(), one.seed.nunique()))
        rho = {}
        for _, a, b in unit_pairs(one):
            rho[(a.source, a.seed, b.source, b.seed)] = rho[(b.source, b.seed, a.source, a.seed)] = float(
                np.corrcoef(ranks(a.scores_dir), ranks(b.scores_dir))[0, 1])
        for sparsity, group in by_score.groupby("sparsity"):
            masks = {u.unit_dir: _flat(run_dir / u.unit_dir / "mask.safetensors").astype(bool)
                     for u in group.itertuples()}
            for kind, a, b in unit_pairs(group):
                rows.append({"encoder": encoder, "score": score, "sparsity": sparsity, "pair": kind,
                             "source_a": a.source, "source_b": b.source, "seed_a": a.seed, "seed_b": b.seed,
                             "iou": pruned_iou(masks[a.unit_dir], masks[b.unit_dir]),
                             "iou_random": sparsity / (2 - sparsity),
                             "spearman": rho[(a.source, a.seed, b.source, b.seed)]})
    return pd.DataFrame(rows, columns=P1_COLUMNS)


def agreement_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (encoder, score, sparsity): mean IoU, random-mask IoU and Spearman over pairs of sources (``pairs``
    of them), and mean IoU and Spearman over pairs of seeds of one source (``iou_seeds``, ``spearman_seeds``,
    NaN without them: one seed, or a table written before they were recorded)."""
    keys = ["encoder", "score", "sparsity"]
    kind = pairs["pair"] if "pair" in pairs else pd.Series(ACROSS_SOURCES, index=pairs.index)
    grouped = pairs[kind == ACROSS_SOURCES].groupby(keys, sort=False)
    out = grouped[["iou", "iou_random", "spearman"]].mean()
    out["pairs"] = grouped.size()
    seeds = pairs[kind == ACROSS_SEEDS].groupby(keys)[["iou", "spearman"]].mean()
    out = out.join(seeds.rename(columns={"iou": "iou_seeds", "spearman": "spearman_seeds"}))
    for column in ("iou_seeds", "spearman_seeds"):
        if column not in out:
            out[column] = np.nan
    return out.reset_index()


def draw_agreement(pairs: pd.DataFrame, level: str = "sparsity") -> plt.Figure:
    """Left: mean pruned-set IoU across sources vs ``level`` per score (solid), the same across seeds of one
    source as the reference each score's own noise allows (dashed), random masks (dotted). Right: the Spearman
    ρ of the scores (one value per score: a score file serves every sparsity), across sources and across seeds."""
    table = agreement_summary(pairs)
    several = table.encoder.nunique() > 1
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    names = [(e, s) for e in dict.fromkeys(table.encoder) for s in baseline_first(table[table.encoder == e].score)]
    for k, (encoder, score) in enumerate(names):
        g = table[(table.encoder == encoder) & (table.score == score)].sort_values("sparsity")
        label, colour = f"{score} ({encoder})" if several else score, score_colour(score)
        axes[0].plot(g.sparsity, g.iou, "o-", color=colour, label=label)
        if g.iou_seeds.notna().any():
            axes[0].plot(g.sparsity, g.iou_seeds, "x--", color=colour, lw=1, label=f"{label}: across seeds")
        axes[1].bar(k - 0.2, g.spearman.mean(), 0.4, color=colour, edgecolor="k", lw=0.5, label=label)
        if g.spearman_seeds.notna().any():
            axes[1].bar(k + 0.2, g.spearman_seeds.mean(), 0.4, color=colour, alpha=0.45, hatch="//", edgecolor="k",
                        lw=0.5, label=f"{label}: across seeds")
    grid = np.linspace(0, max(0.9, float(table.sparsity.max())), 50)
    axes[0].plot(grid, grid / (2 - grid), "k:", label="random masks")
    seeds = table.iou_seeds.notna().any()
    axes[0].set(xlabel=level, ylabel="IoU of pruned sets", ylim=(-0.05, 1.05),
                title="Mask overlap across sources" + (" (dashed: across seeds)" if seeds else ""))
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[1].set_xticks(range(len(names)), [f"{s} ({e})" if several else s for e, s in names], rotation=30, ha="right",
                       fontsize=8)
    axes[1].axhline(0, color="k", lw=0.5)
    axes[1].set(ylabel="Spearman ρ of scores", ylim=(-1.05, 1.05),
                title="Score rank correlation across sources" + (" (hatched: across seeds)" if seeds else ""))
    axes[1].title.set_fontsize(9)
    axes[0].title.set_fontsize(9)
    fig.suptitle("P1 diagnostics: do masks and scores computed on different source tasks agree?", fontsize=10)
    fig.tight_layout()
    return fig


def plot_agreement(pairs: pd.DataFrame, path: Path, level: str = "sparsity") -> Path:
    """Draw the P1 agreement figure into ``path`` (PNG)."""
    return save_figure(draw_agreement(pairs, level), path)
