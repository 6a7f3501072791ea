"""P1 diagnostics: do masks and scores computed on different source tasks agree?

For each encoder, score and sparsity and each pair of sources (a, b): the IoU of the *pruned* sets,
``|P_a ∩ P_b| / |P_a ∪ P_b|`` over all prunable weights (two independent random masks at sparsity p
have expected IoU ``p / (2 - p)``, shown as the reference), and the Spearman rank correlation of the
two sources' scores (average ranks for ties). Masks come from the unit stage directories and scores
from the scores stage directories listed in the run's ``units.json``.
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
from pait.report.run_folder import read_json  # noqa: E402
from pait.report.savefig import save_figure  # noqa: E402
from pait.tensorfiles import read_safetensors  # noqa: E402

P1_COLUMNS = ["encoder", "score", "sparsity", "source_a", "source_b", "iou", "iou_random", "spearman"]


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


def mask_agreement(run_dir: Path) -> pd.DataFrame:
    """One row per (encoder, score, sparsity, seed, pair of sources); empty without ``units.json`` or 2 sources."""
    index_path = run_dir / "units.json"
    if not index_path.is_file():
        return pd.DataFrame(columns=P1_COLUMNS)
    units = pd.DataFrame(read_json(index_path, list, ("encoder", "score", "sparsity", "source", "unit_dir",
                                                      "scores_dir")))
    rows = []
    if "seed" not in units:
        units = units.assign(seed=0)
    ranks: dict[str, np.ndarray] = {}  # one score file serves every sparsity and pair: rank it once
    # (groups sorted so that one (encoder, seed, score) is done before the next, whose ranks replace these)

    def score_correlation(a: str, b: str) -> float:
        for folder in (a, b):
            if folder not in ranks:
                ranks[folder] = average_ranks(_flat(run_dir / folder / "scores.safetensors"))
        return float(np.corrcoef(ranks[a], ranks[b])[0, 1])

    for (encoder, _, score, sparsity), group in units.groupby(["encoder", "seed", "score", "sparsity"]):
        if ranks and not set(ranks) & set(group.scores_dir):
            ranks.clear()
        group = group.drop_duplicates("source")  # one unit per source: recoveries share the mask
        masks = {u.unit_dir: _flat(run_dir / u.unit_dir / "mask.safetensors") for u in group.itertuples()}
        for a, b in itertools.combinations(group.itertuples(), 2):
            rows.append({"encoder": encoder, "score": score, "sparsity": sparsity, "source_a": a.source,
                         "source_b": b.source, "iou": pruned_iou(masks[a.unit_dir], masks[b.unit_dir]),
                         "iou_random": sparsity / (2 - sparsity),
                         "spearman": score_correlation(a.scores_dir, b.scores_dir)})
    return pd.DataFrame(rows, columns=P1_COLUMNS)


def agreement_summary(pairs: pd.DataFrame) -> pd.DataFrame:
    """Mean over source pairs per (encoder, score, sparsity)."""
    grouped = pairs.groupby(["encoder", "score", "sparsity"])
    out = grouped[["iou", "iou_random", "spearman"]].mean()
    out["pairs"] = grouped.size()
    return out.reset_index()


def draw_agreement(pairs: pd.DataFrame) -> plt.Figure:
    """Mean pruned-set IoU (left, random-mask reference dotted) and Spearman (right) vs sparsity, per score."""
    table = agreement_summary(pairs)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (encoder, score), g in table.groupby(["encoder", "score"], sort=False):
        label = f"{score} ({encoder})" if table.encoder.nunique() > 1 else score
        axes[0].plot(g.sparsity, g.iou, "o-", label=label)
        axes[1].plot(g.sparsity, g.spearman, "o-", label=label)
    grid = np.linspace(0, max(0.9, float(table.sparsity.max())), 50)
    axes[0].plot(grid, grid / (2 - grid), "k:", label="random masks")
    axes[0].set_ylabel("IoU of pruned sets across sources")
    axes[1].set_ylabel("Spearman ρ of scores across sources")
    for ax in axes:
        ax.set_xlabel("sparsity")
        ax.set_ylim(-0.05 if ax is axes[0] else -1.05, 1.05)
        ax.legend(fontsize=8)
    fig.suptitle("P1 diagnostics: agreement of masks and scores computed on different source tasks", fontsize=10)
    fig.tight_layout()
    return fig


def plot_agreement(pairs: pd.DataFrame, path: Path) -> Path:
    """Draw the P1 agreement figure into ``path`` (PNG)."""
    return save_figure(draw_agreement(pairs), path)
