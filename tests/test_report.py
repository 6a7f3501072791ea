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

from pait.cache import to_jsonable
from pait.cli import main
from pait.config import config_from_dict
from pait.report import build_report
from pait.report.build import results_table
from pait.report.claims import p1_table, p1_verdicts, p2_pairs, p2_table, second_order_verdicts
from pait.report.document import Table, to_markdown
from pait.report.fig3 import draw_fig3
from pait.report.p1 import agreement_summary, draw_agreement, mask_agreement
from pait.report.pairwise import METRICS, pairwise_table
from pait.report.stat_blocks import claim_blocks, fmt_ci, fmt_p, pairwise_blocks
from pait.report.stats import COLLAPSED, FAILS, HOLDS, UNCLEAR, crossed_paired, verdict
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
            for stage, name in (("pruned", "zero-shot"), ("recovered", "after sgd")):
                bars = containers[f"{score} ({name})"]
                want = table[(table.score == score) & (table.stage == stage)].sort_values("sparsity")[f"{metric}_mean"]
                assert np.allclose([b.get_height() for b in bars.patches], want.to_numpy())
        unpruned = table[table.stage == "unpruned"][f"{metric}_mean"].mean()
        assert np.isclose(axes[row, 0].lines[0].get_ydata()[0], unpruned)


def test_transfer_heatmaps_are_the_transfer_matrices(results):
    fig = draw_transfer(results, "tiny-test-cnn", "tiny-test-snip")
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 2 * 2  # {zero-shot, recovered} x 2 sparsities
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


def test_p1_agreement_names_a_mask_overwritten_with_as_many_bytes(tiny_run, tmp_path):
    import shutil

    from pait.errors import RunFolderError

    shutil.copytree(tiny_run.parent, tmp_path / "copy")
    run = tmp_path / "copy" / tiny_run.name
    unit = json.loads((run / "units.json").read_text())[0]["unit_dir"]
    mask = run / unit / "mask.safetensors"
    data = bytearray(mask.read_bytes())
    data[-1] ^= 0xFF  # a keep flag flipped: the file still reads
    mask.write_bytes(bytes(data))
    with pytest.raises(RunFolderError, match="mask.safetensors does not hold the bytes written"):
        mask_agreement(run)


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
    bars = {c.get_label(): c for c in fig.axes[1].containers}  # one Spearman per score: it ignores sparsity
    assert np.isclose(bars["tiny-test-snip"].patches[0].get_height(), want.spearman.mean())
    assert want.spearman.nunique() == 1 and want.iou_seeds.isna().all()  # one seed: no across-seed reference
    assert set(pairs["pair"]) == {"sources"}


def test_p2_table_counts_negative_transfer_gains(results):
    pairs = p2_pairs(results)
    table = p2_table(results)
    assert table.pairs.sum() == len(pairs) == 2 * 2 * 2 * 2  # scores x sparsities x sources x transfer targets
    assert table.violations.sum() == int((pairs.gain < 0).sum())


def test_p2_leaves_out_recovery_none(results):
    none = results[results.stage != "unpruned"].copy()
    none["recovery"] = "none"
    both = pd.concat([results, none[none.stage == "recovered"]], ignore_index=True)
    assert p2_pairs(none).empty and p2_table(none).empty
    assert p2_table(both).recovery.unique().tolist() == ["sgd"]
    assert len(p2_pairs(both)) == len(p2_pairs(results))


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
    assert not re.search(r"\bnan\b", md, re.IGNORECASE)  # the after-recovery settings have no P1 row of n = 0
    assert build_report(tiny_run) == tiny_run / "report.md"


# --- Replicates: a synthetic results table with several sources and seeds (no model runs) ---

SOURCES, SEEDS, SPARSITIES = ["s0", "s1", "s2", "s3"], [0, 1, 2], [0.3, 0.6]
# per score: (zero-shot transfer offset vs magnitude, re-training gain on transfer)
EFFECTS = {"magnitude": (0.0, 0.03), "fisher_diag": (0.05, 0.03), "kfac": (-0.10, -0.05)}


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    """Every (score, sparsity, source, seed) unit x 4 targets x 3 stages, with known effects plus noise."""
    rng = np.random.default_rng(7)
    rows = []
    for source in SOURCES:
        for seed in SEEDS:
            base = {t: 0.8 + rng.normal(0, 0.02) for t in SOURCES}  # unpruned, shared by the unit's scores
            for score, (offset, gain) in EFFECTS.items():
                for sp in SPARSITIES:
                    for target in SOURCES:
                        pruned = base[target] - sp / 3 + (offset if target != source else 0) + rng.normal(0, 0.01)
                        for stage, acc in (("unpruned", base[target]), ("pruned", pruned),
                                           ("recovered", pruned + gain + rng.normal(0, 0.01))):
                            rows.append({"encoder": "enc", "score": score, "sparsity": sp, "source": source,
                                         "target": target, "is_source": target == source, "stage": stage,
                                         "accuracy": acc, "loss": 1 - acc, "seed": seed, "protocol": "heldout",
                                         "suite": "synthetic", "unit": f"{score}-{sp}-{source}-{seed}"})
    return pd.DataFrame(rows)


def _unit_accuracy(results: pd.DataFrame, score: str, sp: float, source: str, seed: int, stage: str) -> tuple[float, float]:
    """(source accuracy, mean transfer accuracy) of one unit, read row by row."""
    sel = results[(results.score == score) & (results.sparsity == sp) & (results.source == source)
                  & (results.seed == seed) & (results.stage == stage)]
    return float(sel[sel.target == source].accuracy.iloc[0]), float(sel[sel.target != source].accuracy.mean())


def _hand_differences(results, score, sp, stage, metric):
    i = 0 if metric == "source_acc" else 1
    return [_unit_accuracy(results, score, sp, src, seed, stage)[i] - _unit_accuracy(results, "magnitude", sp, src, seed,
                                                                                  stage)[i]
            for src in SOURCES for seed in SEEDS]


def _crossed(values):
    """``stats.crossed_paired`` of values listed source by source, seed by seed (as ``_hand_differences``)."""
    return crossed_paired(values, np.repeat(SOURCES, len(SEEDS)), np.tile(SEEDS, len(SOURCES)))


def _table_rows(blocks) -> list[list[str]]:
    return [row for b in blocks if isinstance(b, Table) for row in b.rows]


def test_pairwise_table_shows_stats_of_hand_computed_differences(synthetic):
    shown = {tuple(r[:5]): r[5:] for r in _table_rows(pairwise_blocks(pairwise_table(synthetic)))}
    assert len(shown) == 2 * 2 * 2 * 2  # scores x sparsities x stages x metrics
    for score in ("fisher_diag", "kfac"):
        for sp in SPARSITIES:
            for stage, stage_name in (("pruned", "zero-shot"), ("recovered", "after sgd")):
                for metric, metric_name in METRICS.items():
                    p = _crossed(_hand_differences(synthetic, score, sp, stage, metric))
                    n, ci, w, s = shown[("enc", score, f"{sp:.2%}", stage_name, metric_name)]
                    assert n == f"{p.n} ({len(SOURCES)} x {len(SEEDS)})" and p.n == len(SOURCES) * len(SEEDS)
                    assert ci == fmt_ci(p.mean, p.low, p.high, "signed")
                    assert (w, s) == (fmt_p(p.wilcoxon_p), fmt_p(p.sign_p))
    md = to_markdown(pairwise_blocks(pairwise_table(synthetic)))
    assert "| enc | kfac | 60.00% | zero-shot | mean transfer | 12 (4 x 3) |" in md


def test_summary_and_fig3_error_bars_are_crossed_intervals_over_sources_and_seeds(synthetic):
    table = summary(synthetic)
    row = table[(table.score == "kfac") & (table.sparsity == 0.6) & (table.stage == "recovered")].iloc[0]
    hand = _crossed([_unit_accuracy(synthetic, "kfac", 0.6, src, seed, "recovered")[1] for src in SOURCES for seed in SEEDS])
    assert row.transfer_acc_n == hand.n == 12
    assert (row.transfer_acc_mean, row.transfer_acc_low, row.transfer_acc_high) == pytest.approx((hand.mean, hand.low,
                                                                                                  hand.high))
    shown = {tuple(r[:4]): r for r in results_table(synthetic).rows}
    assert shown[("enc", "kfac", "60.00%", "after sgd")][5:] == [fmt_ci(hand.mean, hand.low, hand.high), "12"]
    fig = draw_fig3(synthetic)
    ax = np.array(fig.axes).reshape(2, -1)[1, 0]
    bars = next(c for c in ax.containers if c.get_label() == "kfac (after sgd)")
    segments = bars.errorbar.lines[2][0].get_segments()
    want = table[(table.score == "kfac") & (table.stage == "recovered")].sort_values("sparsity")
    assert np.allclose([s[0][1] for s in segments], want.transfer_acc_low)
    assert np.allclose([s[1][1] for s in segments], want.transfer_acc_high)


def test_verdicts_follow_the_intervals(synthetic):
    pairs = pairwise_table(synthetic)
    p1 = p1_verdicts(pairs).set_index(["score", "sparsity"])
    for score, want in (("fisher_diag", HOLDS), ("kfac", FAILS)):  # +0.05 and -0.10 on transfer by construction
        for sp in SPARSITIES:
            p = _crossed(_hand_differences(synthetic, score, sp, "pruned", "transfer_acc"))
            assert p1.loc[(score, sp), "verdict"] == verdict(p.low, p.high) == want
    p2 = p2_table(synthetic).set_index(["score", "sparsity"])
    for score in EFFECTS:
        for sp in SPARSITIES:
            gains = [_unit_accuracy(synthetic, score, sp, src, seed, "recovered")[1]
                     - _unit_accuracy(synthetic, score, sp, src, seed, "pruned")[1] for src in SOURCES for seed in SEEDS]
            p = _crossed(gains)
            assert p2.loc[(score, sp), "mean"] == pytest.approx(p.mean)
            assert (p2.loc[(score, sp), "low"], p2.loc[(score, sp), "high"]) == pytest.approx((p.low, p.high))
            assert p2.loc[(score, sp), "verdict"] == verdict(p.low, p.high)
            assert p2.loc[(score, sp), "verdict"] == (FAILS if score == "kfac" else HOLDS)
    so = second_order_verdicts(pairs)
    assert set(so.sparsity) == {0.6} and set(so.score) == {"fisher_diag", "kfac"} and len(so) == 2 * 2 * 2
    assert (so[(so.score == "kfac") & (so.metric == "transfer_acc")].verdict == FAILS).all()
    md = to_markdown(claim_blocks(pairs, p2_table(synthetic)))
    assert "Data-dependent scores vs `magnitude` (a data-dependent score keeps" in md and f"{HOLDS} in 2, {FAILS} in 2, {UNCLEAR} in 0 of 4 setting(s)" in md


def test_one_replicate_says_it_has_no_interval(synthetic):
    one = synthetic[(synthetic.source == "s0") & (synthetic.seed == 0)]
    cell = {tuple(r[:4]): r for r in results_table(one).rows}[("enc", "kfac", "30.00%", "zero-shot")]
    assert cell[4].endswith("(no CI, n = 1)") and cell[6] == "1"
    rows = _table_rows(claim_blocks(pairwise_table(one), p2_table(one)))
    assert rows and all(r[6].endswith("(no CI, n = 1)") and r[-2] == r[-1] == f"**{UNCLEAR}**" for r in rows)


def test_report_on_synthetic_replicates(synthetic, tmp_path):
    config = config_from_dict({"name": "synthetic", "encoders": ["tiny-test-cnn"], "scores": list(EFFECTS),
                               "sparsities": SPARSITIES, "seeds": SEEDS})
    (tmp_path / "config.json").write_text(json.dumps(to_jsonable(config)))
    synthetic.to_parquet(tmp_path / "results.parquet")
    md = build_report(tmp_path).read_text()
    assert "Seeds: 0, 1, 2." in md and "n = 12 (source x seed) replicates per bar" in md
    for heading in ("Each score against `magnitude`, paired", "Verdicts", "P2: does recovery"):
        assert heading in md
    p = _crossed(_hand_differences(synthetic, "fisher_diag", 0.6, "recovered", "transfer_acc"))
    assert fmt_ci(p.mean, p.low, p.high, "signed") in md
    gains = [_unit_accuracy(synthetic, "kfac", 0.6, src, seed, "recovered")[1]
             - _unit_accuracy(synthetic, "kfac", 0.6, src, seed, "pruned")[1] for src in SOURCES for seed in SEEDS]
    p = _crossed(gains)
    assert (f"| enc | kfac | sgd | 60.00% | 12 (4 x 3) | {fmt_ci(p.mean, p.low, p.high, 'signed')} | "
            f"{fmt_p(p.wilcoxon_p)} | {fmt_p(p.sign_p)} |") in md
    assert f"| **{FAILS}** | **{FAILS}** |" in md


def test_near_chance_comparisons_are_collapsed_in_both_verdict_columns(synthetic):
    near = synthetic.assign(num_classes=10)  # chance 0.1 on every task
    low = (near.sparsity == 0.6) & (near.stage == "pruned")
    near.loc[low, "accuracy"] = 0.1 + 0.02 * np.random.default_rng(0).random(int(low.sum()))
    pairs = pairwise_table(near)
    p1 = p1_verdicts(pairs).set_index(["score", "sparsity"])
    assert p1.loc[("fisher_diag", 0.6), "chance"] == pytest.approx(0.1)
    assert (p1.xs(0.6, level="sparsity")[["verdict", "holm_verdict"]] == COLLAPSED).all().all()
    assert (p1.xs(0.3, level="sparsity").verdict.tolist()) == [HOLDS, FAILS]  # far from chance: as before
    so = second_order_verdicts(pairs)
    assert set(so[so.stage == "pruned"].verdict) == {COLLAPSED} and COLLAPSED not in set(so[so.stage == "recovered"].verdict)
    md = to_markdown(claim_blocks(pairs, p2_table(near)))
    assert f"| **{COLLAPSED}** | **{COLLAPSED}** |" in md and f"{COLLAPSED} in 2 of 4 setting(s)" in md
    assert not (p1_verdicts(pairwise_table(synthetic)).verdict == COLLAPSED).any()  # chance unknown: never


def test_holm_column_stands_beside_the_raw_verdicts(synthetic):
    p1 = p1_verdicts(pairwise_table(synthetic))
    assert {"verdict", "holm_verdict", "p_holds", "p_fails"} <= set(p1.columns)
    assert (p1.verdict == p1.holm_verdict).all()  # effects of 5 and 10 points survive the correction
    md = to_markdown(claim_blocks(pairwise_table(synthetic), p2_table(synthetic)))
    assert "| verdict | verdict, Holm |" in md and "with Holm's correction: " in md


def test_report_with_two_replicates_prints_no_nan_and_no_interval_outside_the_bounds(synthetic, tmp_path):
    two = synthetic[(synthetic.seed == 0) & synthetic.source.isin(["s0", "s1"]) & synthetic.target.isin(["s0", "s1"])]
    two = two.assign(accuracy=1 - (1 - two.accuracy) / 10)  # accuracies near 1: a t interval on 1 df passes it
    table = p1_table(two)
    assert len(table) == len(EFFECTS) * len(SPARSITIES) and (table.source_drop_n == 2).all()  # no n = 0 row
    config = config_from_dict({"name": "two", "encoders": ["tiny-test-cnn"], "scores": list(EFFECTS),
                               "sparsities": SPARSITIES, "seeds": [0]})
    (tmp_path / "config.json").write_text(json.dumps(to_jsonable(config)))
    two.to_parquet(tmp_path / "results.parquet")
    md = build_report(tmp_path).read_text()
    assert not re.search(r"\bnan\b", md, re.IGNORECASE)
    accuracies = re.findall(r"(?<![+\-\d.])(\d\.\d{3}) \[(-?\d\.\d{3}), (-?\d\.\d{3})\]", md)
    assert accuracies and all(0 <= float(lo) <= float(m) <= float(hi) <= 1 for m, lo, hi in accuracies)
    changes = re.findall(r"\[([+-]\d+\.\d)%, ([+-]\d+\.\d)%\]", md)
    assert changes and all(float(lo) >= -100 for lo, _ in changes)


def test_chance_comes_from_the_suite_and_feeds_the_collapsed_outcome(synthetic):
    from pait.report.chance import suite_chance

    assert suite_chance({"name": "tiny-test-suite"}) == {f"task-{t}": pytest.approx(1 / 3) for t in range(3)}
    assert suite_chance({"name": "no-such-suite"}) == {}
    near = synthetic.copy()
    low = (near.sparsity == 0.6) & (near.stage == "pruned")
    near.loc[low, "accuracy"] = 0.25 + 0.02 * np.random.default_rng(0).random(int(low.sum()))
    by_column = p1_verdicts(pairwise_table(near.assign(num_classes=4)))
    by_suite = p1_verdicts(pairwise_table(near, chance={t: 0.25 for t in SOURCES}))
    assert by_suite.verdict.tolist() == by_column.verdict.tolist() and COLLAPSED in set(by_suite.verdict)
    gone = p2_table(near.assign(recovery="sgd"), chance={t: 0.9 for t in SOURCES})  # every side under 0.95
    assert set(gone.verdict) == set(gone.holm_verdict) == {COLLAPSED}
