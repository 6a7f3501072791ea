"""Every figure drawn from a tiny finished run, checked against the tables it was drawn from."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from scipy.stats import spearmanr

from pait.cli import main
from pait.report import build_report
from pait.report.claims import p2_pairs, p2_table
from pait.report.fig3 import draw_fig3
from pait.report.p1 import agreement_summary, draw_agreement, mask_agreement
from pait.report.tables import summary
from pait.report.transfer import STAGE_TITLES, draw_transfer, transfer_matrix


@pytest.fixture(scope="module")
def results(tiny_run):
    return pd.read_parquet(tiny_run / "results.parquet")


def test_fig3_bar_heights_are_the_summary_means(results):
    fig = draw_fig3(results)
    table = summary(results)
    axes = np.array(fig.axes).reshape(2, -1)
    for row, metric in enumerate(("source_acc", "transfer_acc")):
        containers = {c.get_label(): c for c in axes[row, 0].containers if hasattr(c, "patches")}
        for score in ("magnitude", "tiny-test-snip"):
            for stage, name in (("pruned", "zero-shot"), ("recovered", "re-trained")):
                bars = containers[f"{score} ({name})"]
                want = table[(table.score == score) & (table.stage == stage)].sort_values("sparsity")[f"{metric}_mean"]
                assert np.allclose([b.get_height() for b in bars.patches], want.to_numpy())
        unpruned = table[table.stage == "unpruned"][f"{metric}_mean"].mean()
        assert np.isclose(axes[row, 0].lines[0].get_ydata()[0], unpruned)


def test_transfer_heatmaps_are_the_transfer_matrices(results):
    fig = draw_transfer(results, "tiny-test-cnn", "tiny-test-snip")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * 2  # {zero-shot, re-trained} x 2 sparsities
    for ax in images:
        stage_title, sparsity = ax.get_title().split(", ")
        stage = next(k for k, v in STAGE_TITLES.items() if v == stage_title)
        sp = float(sparsity.rstrip("%")) / 100
        matrix = transfer_matrix(results, "tiny-test-cnn", "tiny-test-snip", sp, stage)
        assert np.allclose(np.asarray(ax.images[0].get_array()), matrix.to_numpy())
        # one entry by hand: source task-0 evaluated on task-2
        sel = results[(results.score == "tiny-test-snip") & (results.sparsity == sp) & (results.source == "task-0")
                      & (results.target == "task-2")].set_index("stage").accuracy
        assert np.isclose(matrix.loc["task-0", "task-2"], sel[stage] - sel["unpruned"])


def test_p1_agreement_matches_masks_and_scores_on_disk(tiny_run):
    pairs = mask_agreement(tiny_run)
    index = {(u["score"], u["sparsity"], u["source"]): u for u in json.loads((tiny_run / "units.json").read_text())}
    for r in pairs.itertuples():
        a, b = index[(r.score, r.sparsity, r.source_a)], index[(r.score, r.sparsity, r.source_b)]
        ma, mb = (load_file(str(tiny_run / u["unit_dir"] / "mask.safetensors")) for u in (a, b))
        inter = sum(int(((ma[k] == 0) & (mb[k] == 0)).sum()) for k in ma)
        union = sum(int(((ma[k] == 0) | (mb[k] == 0)).sum()) for k in ma)
        assert r.iou == pytest.approx(inter / union)
        sa, sb = (load_file(str(tiny_run / u["scores_dir"] / "scores.safetensors")) for u in (a, b))
        flat = [torch.cat([s[k].flatten() for k in sorted(s)]).numpy() for s in (sa, sb)]
        assert r.spearman == pytest.approx(spearmanr(*flat).statistic)
    snip = pairs[pairs.score == "tiny-test-snip"]
    assert (snip.iou < 1).all() and (pairs[pairs.score == "magnitude"].iou == 1).all()
    fig = draw_agreement(pairs)
    table = agreement_summary(pairs)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    want = table[table.score == "tiny-test-snip"]
    assert np.allclose(lines["tiny-test-snip"].get_ydata(), want.iou)
    assert np.allclose({l.get_label(): l for l in fig.axes[1].lines}["tiny-test-snip"].get_ydata(), want.spearman)


def test_p2_table_counts_negative_transfer_gains(results):
    pairs = p2_pairs(results)
    table = p2_table(results)
    assert table.pairs.sum() == len(pairs) == 2 * 2 * 2 * 2  # scores x sparsities x sources x transfer targets
    assert table.violations.sum() == int((pairs.gain < 0).sum())


def test_report_command_writes_markdown_and_self_contained_html(tiny_run):
    assert main(["report", str(tiny_run)]) == 0
    md = (tiny_run / "report.md").read_text()
    html = (tiny_run / "report.html").read_text()
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert {"figures/fig1.png", "figures/fig2.png", "figures/fig3.png", "figures/p1_agreement.png"} <= set(figures)
    assert all((tiny_run / f).stat().st_size > 5_000 for f in figures)
    assert html.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing external
    for heading in ("P1", "P2", "Transfer matrix", "Fig. 4"):
        assert heading in md
    assert build_report(tiny_run) == tiny_run / "report.md"
