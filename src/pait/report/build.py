"""``build_report(run_dir)``: every figure the run's data allow, ``report.md`` and a self-contained ``report.html``.

Reads only ``results.parquet``, ``config.json``, ``units.json`` (masks and scores of each unit, for
the P1 diagnostics) and cached landscape surfaces (``landscape/*.npz``); nothing is recomputed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pait.cache import write_atomic
from pait.report.surface import Surface
from pait.report.claims import p1_table, p2_pairs, p2_table
from pait.report.document import Block, Bullets, Figure, Heading, Table, Text, to_markdown
from pait.report.fig3 import plot_fig3
from pait.report.fig4 import plot_fig4
from pait.report.html import to_html
from pait.report.p1 import agreement_summary, mask_agreement, plot_agreement
from pait.report.tables import summary
from pait.report.toy import plot_fig1, plot_fig2
from pait.report.transfer import plot_transfer


def _fmt(mean: float, std: float, pct: bool = False) -> str:
    f = (lambda v: f"{100 * v:+.1f}%") if pct else (lambda v: f"{v:.3f}")
    return f(mean) if pd.isna(std) else f"{f(mean)} ± {f(std).lstrip('+')}"


def results_table(results: pd.DataFrame) -> Table:
    """Source and mean transfer accuracy per setting and stage (mean ± std over source tasks)."""
    rows = []
    for r in summary(results).itertuples():
        if r.stage != "unpruned":
            rows.append([r.encoder, r.score, f"{r.sparsity:.2%}", r.stage, _fmt(r.source_acc_mean, r.source_acc_std),
                         _fmt(r.transfer_acc_mean, r.transfer_acc_std), str(r.source_acc_count)])
    unpruned = summary(results)
    unpruned = unpruned[unpruned.stage == "unpruned"].groupby("encoder")[["source_acc_mean", "transfer_acc_mean"]].mean()
    for enc, r in unpruned.iterrows():
        rows.append([enc, "—", "0%", "unpruned", f"{r.source_acc_mean:.3f}", f"{r.transfer_acc_mean:.3f}", ""])
    return Table(["encoder", "score", "sparsity", "stage", "source acc.", "mean transfer acc.", "sources"], rows)


def setup_blocks(config: dict, results: pd.DataFrame) -> list[Block]:
    ft, suite = config["finetune"], config["suite"]
    encoders = ", ".join(f"{e['name']} ({e.get('input_size') or 'native'} px)" for e in config["encoders"])
    same = "the same images" if suite["protocol"] == "paper" else "disjoint images"
    return [Heading("Setup"), Bullets([
        f"Encoders: {encoders}.",
        f"Suite `{suite['name']}`, protocol `{suite['protocol']}`: {suite['calib_per_class']} calibration images per "
        f"class (heads, scores, re-training) and {suite['eval_per_class']} evaluation images per class ({same}).",
        f"Tasks: {', '.join(dict.fromkeys(results.target))}; source tasks: {', '.join(dict.fromkeys(results.source))}. "
        "Each source is pruned and re-trained on in turn; every other task is a transfer task.",
        f"Scores: {', '.join(config['scores'])}; sparsities: {', '.join(f'{s:.2%}' for s in config['sparsities'])} "
        "(global masks over the encoder's conv and linear weights).",
        f"A ridge head (alpha = {config['ridge_alpha']}) per task, fit on the unpruned encoder's calibration features "
        "and then frozen: accuracy after pruning measures the encoder alone.",
        f"Masked re-training on the source: {ft['epochs']} epochs, SGD lr {ft['lr']:g} (x{ft['gamma']:g} at epochs "
        f"{ft['milestones']}), momentum {ft['momentum']:g}, weight decay {ft['weight_decay']:g}, batch {ft['batch_size']}, "
        "MSE to one-hot through the source head, BatchNorm statistics frozen.",
        "Spread (±) is the standard deviation over source tasks.",
    ])]


def toy_blocks(figures: Path) -> list[Block]:
    return [Heading("Background: two-parameter toy landscapes"),
            Text("Each task's loss is a quadratic around its minimum; the pre-trained point θ₀ sits at the source "
                 "minimum and pruning removes one of the two weights. In two dimensions the diagonal and the block "
                 "(OBS) scores rank the weights alike; the OBS update then moves the remaining weight to the best "
                 "point on its axis, so the block score's pruned point has the lowest source loss."),
            Figure(f"figures/{plot_fig1(figures / 'fig1.png').name}", "Fig. 1: the pruned point chosen by each score."),
            Figure(f"figures/{plot_fig2(figures / 'fig2.png').name}",
                   "Fig. 2: gradient descent on the source loss with the mask held, seen by a transfer task.")]


def p1_blocks(results: pd.DataFrame, run_dir: Path, figures: Path) -> list[Block]:
    table = p1_table(results)
    kept = int((table.transfer_drop_mean <= table.source_drop_mean).sum())
    rows = [[r.encoder, r.score, f"{r.sparsity:.2%}", _fmt(-r.source_drop_mean, r.source_drop_std, True),
             _fmt(-r.transfer_drop_mean, r.transfer_drop_std, True)] for r in table.itertuples()]
    blocks: list[Block] = [
        Heading("P1: does pruning on the source preserve transfer?"),
        Text("Relative accuracy change of the zero-shot pruned encoder against the unpruned one (pruned / unpruned − 1), "
             "on the source task and on the mean over transfer tasks."),
        Table(["encoder", "score", "sparsity", "source change", "transfer change"], rows),
        Text(f"In this run, transfer accuracy falls no more (relatively) than source accuracy in **{kept} of {len(table)}** "
             "settings; where it falls more, the pruning decisions made on the source do not carry over."),
    ]
    pairs = mask_agreement(run_dir)
    if pairs.empty:
        return blocks + [Text("Mask and score agreement across sources needs at least two sources and `units.json`.")]
    agree = agreement_summary(pairs)
    rows = [[r.encoder, r.score, f"{r.sparsity:.2%}", f"{r.iou:.3f}", f"{r.iou_random:.3f}", f"{r.spearman:.3f}",
             str(r.pairs)] for r in agree.itertuples()]
    path = plot_agreement(pairs, figures / "p1_agreement.png")
    return blocks + [
        Text("Agreement across sources: the IoU of the sets of **pruned** weights of two sources' masks (two independent "
             "random masks at sparsity p give p / (2 − p)) and the Spearman rank correlation of their scores, averaged "
             "over pairs of sources. High agreement means the mask hardly depends on the source task."),
        Table(["encoder", "score", "sparsity", "IoU pruned", "IoU random", "Spearman ρ", "pairs"], rows),
        Figure(f"figures/{path.name}", "P1 diagnostics: mask overlap and score rank correlation across sources."),
    ]


def p2_blocks(results: pd.DataFrame) -> list[Block]:
    table, pairs = p2_table(results), p2_pairs(results)
    rows = [[r.encoder, r.score, f"{r.sparsity:.2%}", _fmt(r.gain_mean, r.gain_std), f"{r.worst:+.3f}",
             f"{r.violations} / {r.pairs}"] for r in table.itertuples()]
    bad = pairs[pairs.gain < 0].sort_values("gain")
    if bad.empty:
        verdict = f"P2 holds in this run: re-training never lowered a transfer task's accuracy ({len(pairs)} pairs)."
    else:
        worst = "; ".join(f"{r.score} {r.sparsity:.0%}, {r.source} → {r.target}: {r.gain:+.3f}" for r in bad.head(5).itertuples())
        verdict = (f"**P2 is violated** in {len(bad)} of {len(pairs)} (setting, source, transfer task) pairs: re-training "
                   f"on the source lowered the transfer accuracy. Worst: {worst}.")
    return [Heading("P2: does re-training on the source never hurt transfer?"),
            Text("Re-trained minus zero-shot pruned accuracy on the transfer tasks (mean over tasks, ± over sources); "
                 "the worst single (source, transfer task) pair and the count of negative pairs."),
            Table(["encoder", "score", "sparsity", "transfer gain", "worst pair", "violations"], rows), Text(verdict)]


def landscape_blocks(run_dir: Path, figures: Path) -> list[Block]:
    blocks: list[Block] = [Heading("Fig. 4: loss landscapes")]
    surfaces = sorted((run_dir / "landscape").glob("*.npz"))
    for path in surfaces:
        surface = Surface.load(path)
        if surface.rows_done < len(surface.betas):
            blocks.append(Text(f"`{path.name}` is incomplete ({surface.rows_done}/{len(surface.betas)} rows); rerun "
                               "`pait landscape` to finish it."))
            continue
        fig = plot_fig4(surface, figures / f"fig4_{path.stem}.png")
        blocks.append(Figure(f"figures/{fig.name}", "Fig. 4: log loss on the plane through θ₀, the pruned and the "
                             "re-trained weights (source left, transfer right)."))
    blocks.append(Text("Surfaces are computed by `pait landscape RUN_DIR [--source S --score X --sparsity P] "
                       "[--transfer T] [--grid N]` (needs `save_weights: true`); each grid point evaluates the whole "
                       "encoder, so it is left out of the demo. BatchNorm stays in eval mode with the pre-trained "
                       "running statistics, as in re-training; only parameters move." if not surfaces else
                       "BatchNorm stays in eval mode with the pre-trained running statistics; only parameters move."))
    return blocks


def failure_blocks(run_dir: Path) -> list[Block]:
    """Units that failed after their retries (``failures.json``, rewritten by every run), if any."""
    path = run_dir / "failures.json"
    failures = json.loads(path.read_text()) if path.exists() else []
    if not failures:
        return []
    rows = [[f["encoder"], f["score"], f"{f['sparsity']:.2%}", f["source"], f["error"].splitlines()[-1]] for f in failures]
    return [Heading("Failed units"),
            Text(f"{len(failures)} unit(s) failed after their retries and are missing from the tables and figures; "
                 "rerunning the same command retries them (finished stages are reused)."),
            Table(["encoder", "score", "sparsity", "source", "error"], rows)]


def build_report(run_dir: str | Path) -> Path:
    """Draw every figure the run allows and write ``report.md`` and ``report.html``; returns the Markdown path."""
    run_dir = Path(run_dir)
    results = pd.read_parquet(run_dir / "results.parquet")
    config = json.loads((run_dir / "config.json").read_text())
    figures = run_dir / "figures"
    fig3 = plot_fig3(results, figures / "fig3.png")
    blocks: list[Block] = [
        Heading(f"pait report: {config['name']}", 1),
        Text("Pretrained encoders are pruned with data from one source task, then re-trained on it with the masks held; "
             "each task is read through its own frozen ridge head. The question: what happens to the other (transfer) "
             "tasks? P1: pruning on the source preserves transfer; P2: re-training on the source never hurts transfer."),
        *setup_blocks(config, results), *toy_blocks(figures),
        Heading("Source and transfer accuracy"), results_table(results),
        Figure(f"figures/{fig3.name}", "Fig. 3: solid bars pruned zero-shot, hatched bars re-trained; dashed line "
               "unpruned; error bars ± std over source tasks."),
        Heading("Transfer matrix"),
        Text("Accuracy minus the unpruned encoder's, for each source task (row) and evaluated task (column); the boxed "
             "cell is the source itself."),
    ]
    for encoder, score in results[results.stage != "unpruned"][["encoder", "score"]].drop_duplicates().itertuples(index=False):
        path = plot_transfer(results, encoder, score, figures / f"transfer_{encoder}_{score}.png")
        blocks.append(Figure(f"figures/{path.name}", f"Transfer matrix, {encoder}, {score}."))
    blocks += p1_blocks(results, run_dir, figures) + p2_blocks(results) + landscape_blocks(run_dir, figures)
    blocks += failure_blocks(run_dir)
    path = run_dir / "report.md"
    write_atomic(path, to_markdown(blocks).encode())
    write_atomic(run_dir / "report.html", to_html(blocks, run_dir, f"pait report: {config['name']}").encode())
    return path
