"""``build_report(run_dir)``: every figure the run's data allow, ``report.md`` and a self-contained ``report.html``.

Reads only ``results.parquet``, ``config.json``, ``units.json`` (masks and scores of each unit, for
the P1 diagnostics) and cached landscape surfaces (``landscape/*.npz``); nothing is recomputed. When
the run's suite loads here, its tasks' domains (near and far transfer) and class counts (the chance
line) are read from it, and a suite whose images come in styles (emoji10) gets a figure of example images.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pait.cache import write_atomic
from pait.report.surface import Surface
from pait.report.allocation_blocks import allocation_blocks
from pait.report.chance import suite_chance
from pait.report.claims import p1_table, p1_verdicts, p2_table
from pait.report.document import Block, Bullets, Figure, Heading, Table, Text, to_markdown
from pait.report.examples import example_blocks
from pait.report.fig3 import plot_fig3
from pait.report.fig4 import plot_fig4
from pait.report.html import to_html
from pait.report.own_mask_blocks import own_mask_blocks
from pait.report.p1 import agreement_summary, mask_agreement, plot_agreement
from pait.report.p2_blocks import p2_blocks
from pait.report.palette import baseline_first
from pait.report.pairwise import pairwise_table
from pait.report.recoveries import recovery_pair_blocks
from pait.report.stat_blocks import INTERVAL, claim_blocks, fmt_ci, pairwise_blocks, verdict_counts
from pait.report.stats import accuracy_ci
from pait.report.replicates import POINTS_UP_TO
from pait.report.run_folder import check_run_dir, read_json, read_results, read_run_config
from pait.report.suite_facts import suite_facts
from pait.report.tables import (level_name, per_unit, stage_label, summary,
                               without_after_none)
from pait.report.toy import plot_fig1, plot_fig2
from pait.report.transfer import plot_transfer


def results_table(results: pd.DataFrame) -> Table:
    """Source and mean transfer accuracy per setting and stage: mean [95% CI, clipped into [0, 1]] over
    (source x seed), and n.
    Recovery ``none`` has no row of its own: its accuracy is the zero-shot row's by construction."""
    rows = []
    for r in without_after_none(summary(results)).itertuples():
        if r.stage != "unpruned":
            rows.append([r.encoder, r.score, f"{r.sparsity:.2%}", stage_label(r.stage, r.recovery),
                         fmt_ci(r.source_acc_mean, r.source_acc_low, r.source_acc_high),
                         fmt_ci(r.transfer_acc_mean, r.transfer_acc_low, r.transfer_acc_high), str(r.source_acc_n)])
    units = per_unit(results)
    unpruned = units[units.stage == "unpruned"].drop_duplicates(["encoder", "source", "seed"])
    for enc, g in unpruned.groupby("encoder", sort=False):
        src, tr = accuracy_ci(g.source_acc, g.source, g.seed), accuracy_ci(g.transfer_acc, g.source, g.seed)
        rows.append([enc, "—", "0%", "unpruned", fmt_ci(src.mean, src.low, src.high),
                     fmt_ci(tr.mean, tr.low, tr.high), str(src.n)])
    return Table(["encoder", "score", level_name(results), "stage", "source acc.", "mean transfer acc.",
                  "n (source x seed)"], rows)


def replicates_caption(results: pd.DataFrame) -> str:
    """The number of (source x seed) replicates behind each bar of Fig. 3, as "n = 6" or "n = 2–6"."""
    n = summary(results)
    n = n[n.stage != "unpruned"].source_acc_n
    return f"n = {n.min()}" if n.min() == n.max() else f"n = {n.min()}–{n.max()}"


def fig3_caption(results: pd.DataFrame, chance: float | None) -> str:
    """What Fig. 3 shows, with its number of replicates per bar."""
    return ("Fig. 3: solid bars pruned zero-shot, hatched bars recovered; dashed line unpruned"
            + (f", dotted line chance ({chance:.2f})" if chance is not None else "")
            + f"; {replicates_caption(results)} (source x seed) replicates per bar; error bars: 95% CI clipped into "
            f"[0, 1], or the replicates as dots where a bar has {POINTS_UP_TO} or fewer.")


def what_is_cut(config: dict) -> str:
    """The sparsities and what they mean: global weight masks, or (``structure: channels``) channel ratios."""
    levels = ", ".join(f"{s:.2%}" for s in config["sparsities"])
    if config.get("structure", "weights") != "channels":
        return f"sparsities: {levels} (global masks over the encoder's conv and linear weights)."
    return (f"channel ratios: {levels} (the channel ratio column below: whole conv channels, attention heads and MLP "
            f"neurons removed, ranked globally with a 10% floor per group; widths kept at multiples of "
            f"{config.get('round_to', 1)}).")


def setup_blocks(config: dict, results: pd.DataFrame) -> list[Block]:
    ft, suite = config["finetune"], config["suite"]
    encoders = ", ".join(f"{e['name']} ({e.get('input_size') or 'native'} px)" for e in config["encoders"])
    same = {"paper": "the same images", "style-disjoint": "disjoint images in a design held out from "
            "calibration with all its styles, chosen by the seed"}.get(suite["protocol"], "disjoint images")
    return [Heading("Setup"), Bullets([
        f"Encoders: {encoders}.",
        f"Suite `{suite['name']}`, protocol `{suite['protocol']}`: {suite['calib_per_class']} calibration images per "
        f"class (heads, scores, re-training) and {suite['eval_per_class']} evaluation images per class ({same}).",
        f"Tasks: {', '.join(dict.fromkeys(results.target))}; source tasks: {', '.join(dict.fromkeys(results.source))}. "
        "Each source is pruned and re-trained on in turn; every other task is a transfer task.",
        f"Scores: {', '.join(config['scores'])}; {what_is_cut(config)}",
        f"A ridge head (alpha = {config['ridge_alpha']}) per task, fit on the unpruned encoder's calibration features "
        "and then frozen: accuracy after pruning measures the encoder alone.",
        f"Masked re-training on the source: {ft['epochs']} epochs, SGD lr {ft['lr']:g} (x{ft['gamma']:g} at epochs "
        f"{ft['milestones']}), momentum {ft['momentum']:g}, weight decay {ft['weight_decay']:g}, batch {ft['batch_size']}, "
        "MSE to one-hot through the source head, BatchNorm statistics frozen.",
        f"Seeds: {', '.join(str(s) for s in sorted(results.seed.dropna().unique()))}. A replicate is one (source x "
        "seed) unit; intervals are 95% confidence intervals over replicates: " + INTERVAL + ", accuracies clipped "
        "to [0, 1].",
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


def magnitude_blocks(results: pd.DataFrame, pairwise: pd.DataFrame) -> list[Block]:
    """Data-dependent scores against `magnitude`: relative accuracy changes (interval clipped at −100%) and the
    paired verdict (``claims.p1_table``, ``claims.p1_verdicts``); rows without a replicate are left out."""
    table, verdicts = p1_table(results), p1_verdicts(pairwise)
    order = {s: i for i, s in enumerate(baseline_first(results.score))}  # the run's order, `magnitude` first
    table = table.assign(_o=table.score.map(order)).sort_values(["encoder", "_o", "recovery", "sparsity"])

    def change(r, drop: str) -> str:  # relative change = minus the drop, so its interval flips; never below −100%
        low = max(-getattr(r, f"{drop}_high"), -1.0)  # NaN (n < 2) stays NaN
        return fmt_ci(-getattr(r, f"{drop}_mean"), low, -getattr(r, f"{drop}_low"), "pct")

    rows = [[r.encoder, r.score, f"{r.sparsity:.2%}", change(r, "source_drop"), change(r, "transfer_drop"),
             str(r.source_drop_n)] for r in table.itertuples() if r.source_drop_n > 0]
    verdict = (f"Verdict, data-dependent scores against `magnitude` on zero-shot mean transfer accuracy: "
               f"{verdict_counts(verdicts)} (per setting under Verdicts)."
               if not verdicts.empty else
               "No verdict: it needs `magnitude` and a data-dependent score on the same units.")
    return [
        Heading("Data-dependent scores vs magnitude"),
        Text("Relative accuracy change of the zero-shot pruned encoder against the unpruned one (pruned / unpruned − 1), "
             "on the source task and on the mean over transfer tasks: mean [95% CI] over (source x seed)."),
        Table(["encoder", "score", level_name(results), "source change", "transfer change", "n"], rows),
        Text(verdict),
    ]


def agreement_blocks(run_dir: Path, figures: Path, level: str) -> list[Block]:
    """Mask and score agreement across sources, with the agreement across seeds of one source as reference."""
    pairs = mask_agreement(run_dir)
    if pairs.empty:
        return [Text("Mask and score agreement across sources needs at least two sources and `units.json`.")]
    agree = agreement_summary(pairs)
    rows = [[r.encoder, r.score, f"{r.sparsity:.2%}", f"{r.iou:.3f}", _value(r.iou_seeds), f"{r.iou_random:.3f}",
             f"{r.spearman:.3f}", _value(r.spearman_seeds), str(r.pairs)] for r in agree.itertuples()]
    path = plot_agreement(pairs, figures / "p1_agreement.png", level)
    return [
        Text("Agreement across sources, of masks and scores: the IoU of the sets of **pruned** weights of two "
             "masks and the Spearman rank correlation of their scores, across sources (two sources, one seed) and, "
             "as the reference, across "
             "seeds (one source on other calibration images: the agreement that the score's own sampling noise "
             "allows); two independent random masks at sparsity p give p / (2 − p)."),
        Table(["encoder", "score", level, "IoU across sources", "IoU across seeds", "IoU random", "Spearman ρ across "
               "sources", "Spearman ρ across seeds", "source pairs"], rows),
        Figure(f"figures/{path.name}", "P1 diagnostics: mask overlap against sparsity, and score rank correlation "
               "(one per score: it does not depend on sparsity), across sources and across seeds."),
    ]


def _value(x: float) -> str:
    return "— (one seed)" if pd.isna(x) else f"{x:.3f}"


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
    failures = read_json(path, list, ("encoder", "score", "sparsity", "source", "error")) if path.exists() else []
    if not failures:
        return []
    rows = [[f["encoder"], f["score"], f"{f['sparsity']:.2%}", f["source"], f["error"].splitlines()[-1]] for f in failures]
    return [Heading("Failed units"),
            Text(f"{len(failures)} unit(s) failed after their retries and are missing from the tables and figures; "
                 "rerunning the same command retries them (finished stages are reused)."),
            Table(["encoder", "score", "sparsity", "source", "error"], rows)]


def build_report(run_dir: str | Path) -> Path:
    """Draw every figure the run allows and write ``report.md`` and ``report.html``; returns the Markdown path."""
    run_dir = check_run_dir(run_dir)
    results = read_results(run_dir)
    config = read_run_config(run_dir)
    figures = run_dir / "figures"
    facts, level = suite_facts(config["suite"]), level_name(results)
    chance, mean_chance = suite_chance(config["suite"]), facts.chance(dict.fromkeys(results.target))
    fig3 = plot_fig3(results, figures / "fig3.png", mean_chance)
    pairwise = pairwise_table(results, chance=chance)
    blocks: list[Block] = [
        Heading(f"pait report: {config['name']}", 1),
        Text("Pretrained encoders are pruned with data from one source task, then recovered on it (re-trained with the "
             "masks held, or a one-shot update: see the recovery of each row); "
             "each task is read through its own frozen ridge head. The question: what happens to the other (transfer) "
             "tasks? P1: parameters not important for the source are not important for the target, so pruning with the "
             "source alone is approximately optimal; P2: re-training on the source never hurts transfer."),
        *setup_blocks(config, results), *example_blocks(config["suite"], figures), *toy_blocks(figures),
        Heading("Source and transfer accuracy"), results_table(results),
        Figure(f"figures/{fig3.name}", fig3_caption(results, mean_chance)),
        *pairwise_blocks(pairwise), *recovery_pair_blocks(results),
        Heading("Transfer matrix"),
        Text("Accuracy minus the unpruned encoder's, for each source task (row) and evaluated task (column), mean over "
             "seeds; the boxed cell is the source itself."),
    ]
    recoveries = list(dict.fromkeys(results.recovery)) if "recovery" in results else ["sgd"]
    for encoder, score in results[results.stage != "unpruned"][["encoder", "score"]].drop_duplicates().itertuples(index=False):
        for recovery in recoveries:
            one = results[results.recovery == recovery] if len(recoveries) > 1 else results
            name = f"transfer_{encoder}_{score}" + (f"_{recovery}" if len(recoveries) > 1 else "")
            path = plot_transfer(one, encoder, score, figures / f"{name}.png")
            blocks.append(Figure(f"figures/{path.name}", f"Transfer matrix, {encoder}, {score}, recovery {recovery}."))
    p2 = p2_table(results, chance=chance, domains=facts.domains)
    blocks += own_mask_blocks(results, facts, figures, "figures", level) + agreement_blocks(run_dir, figures, level)
    blocks += magnitude_blocks(results, pairwise) + allocation_blocks(results) + p2_blocks(p2) + claim_blocks(pairwise, p2)
    blocks += landscape_blocks(run_dir, figures)
    blocks += failure_blocks(run_dir)
    path = run_dir / "report.md"
    write_atomic(path, to_markdown(blocks).encode())
    write_atomic(run_dir / "report.html", to_html(blocks, run_dir, f"pait report: {config['name']}").encode())
    return path
