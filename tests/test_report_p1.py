"""P1 as stated (own mask vs other sources' masks), near and far transfer, the score palette, and a report
from a tiny table with two replicates: hand-computed numbers, fixed colours, nothing undefined printed."""

from __future__ import annotations

import json
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from pait.cache import to_jsonable
from pait.config import config_from_dict
from pait.executors import run_grid
from pait.grid.plan import run_dir
from pait.report import build_report
from pait.report.document import Figure, Table, to_markdown
from pait.report.fig3 import draw_fig3
from pait.report.fig4 import draw_fig4
from pait.report.own_mask import (AT_CHANCE, SOURCE_FREE, own_other_pairs, own_other_table, retention_by_target,
                                  split_by_domain)
from pait.report.own_mask_blocks import own_mask_blocks
from pait.report.p1 import agreement_summary, draw_agreement, mask_agreement
from pait.report.palette import EXTRA, SCORE_COLOURS, baseline_first, score_colour
from pait.report.stats import HOLDS, MARGIN, UNCLEAR, crossed_ci
from pait.report.suite_facts import SuiteFacts
from pait.report.surface import Surface

TASKS = ("A", "B", "C")
DOMAINS = {"A": "x", "B": "x", "C": "y"}
# zero-shot accuracy of target (column) pruned with source (row)'s data, seed 0; seed 1 adds OWN_SHIFT on the
# diagonal only, so that the gaps differ between seeds
PRUNED = {"A": {"A": 0.80, "B": 0.70, "C": 0.50},
          "B": {"A": 0.75, "B": 0.90, "C": 0.55},
          "C": {"A": 0.60, "B": 0.65, "C": 0.85}}
OWN_SHIFT, UNPRUNED = 0.02, {"A": 0.90, "B": 0.95, "C": 0.88}


def _rows(score: str, pruned: dict, own_shift: float = OWN_SHIFT, recoveries=("sgd", "none")) -> list[dict]:
    rows = []
    for seed in (0, 1):
        for source in TASKS:
            for recovery in recoveries:
                for target in TASKS:
                    acc = pruned[source][target] + (own_shift * seed if source == target else 0.0)
                    after = acc if recovery == "none" else acc + 0.01
                    for stage, a in (("unpruned", UNPRUNED[target]), ("pruned", acc), ("recovered", after)):
                        rows.append({"encoder": "enc", "score": score, "sparsity": 0.5, "source": source,
                                     "recovery": recovery, "structure": "weights", "seed": seed, "target": target,
                                     "is_source": source == target, "stage": stage, "accuracy": a, "loss": 1 - a,
                                     "protocol": "heldout", "suite": "synthetic", "unit": f"{score}-{source}-{seed}"})
    return rows


@pytest.fixture(scope="module")
def grid() -> pd.DataFrame:
    """Score `gapped` with the PRUNED table; score `flat` whose own mask is 0.001 (seed 0) or 0.0015 (seed 1)
    worse than the others'."""
    flat = {s: {t: 0.8 - (0.001 if s == t else 0.0) for t in TASKS} for s in TASKS}
    return pd.DataFrame(_rows("gapped", PRUNED) + _rows("flat", flat, -0.0005))


def _hand_gaps(kind: str = "other") -> list[float]:
    """own − mean over the other sources (``near``: same domain, ``far``: another) per (target, seed), by hand."""
    gaps = []
    for seed in (0, 1):
        for t in TASKS:
            others = [s for s in TASKS
                      if s != t and (kind == "other" or (DOMAINS[s] == DOMAINS[t]) == (kind == "near"))]
            if others:
                gaps.append(PRUNED[t][t] + OWN_SHIFT * seed - float(np.mean([PRUNED[s][t] for s in others])))
    return gaps


def test_own_vs_other_gap_matches_a_hand_computed_table(grid):
    pairs = own_other_pairs(grid)
    zero_shot = pairs[(pairs.score == "gapped") & (pairs.stage == "pruned")]
    assert len(zero_shot) == 6 and set(zero_shot.recovery) == {"-"}  # recoveries share one pruned row each
    assert sorted(pairs[pairs.score == "gapped"].stage.unique()) == ["pruned", "recovered"]
    assert set(pairs[pairs.stage == "recovered"].recovery) == {"sgd"}  # after `none` repeats zero-shot
    want = np.array([0.125, 0.225, 0.325, 0.145, 0.245, 0.345])  # e.g. target A, seed 0: 0.80 − (0.75 + 0.60) / 2
    assert np.allclose(_hand_gaps(), want, atol=1e-12)
    got = zero_shot.sort_values(["seed", "target"]).gap_other.to_numpy()
    assert got.dtype == np.float64 and np.allclose(got, want, atol=1e-12)
    table = own_other_table(pairs).set_index(["score", "stage"])
    row = table.loc[("gapped", "pruned")]
    ci = crossed_ci(want, ["A", "B", "C"] * 2, [0, 0, 0, 1, 1, 1])  # pairs sorted by (seed, target), as ``want``
    assert row.n == 6 and row["mean"] == pytest.approx(0.235, abs=1e-12)
    assert (row.low, row.high) == pytest.approx((ci.low, ci.high), abs=1e-12) and row.low < row["mean"] < row.high
    # own masks are better by far more than the margin on every pair, but two seeds leave t one degree of
    # freedom and the targets differ widely: the crossed interval cannot say, so the verdict must not either
    assert row.df == 1 and row.low < MARGIN < row.high and row.verdict == UNCLEAR
    flat = table.loc[("flat", "pruned")]
    assert flat["mean"] == pytest.approx(-0.00125) and flat.verdict == HOLDS  # other masks a little better
    # retention: accuracy / unpruned on the same target and seed
    own_a = retention_by_target(pairs).set_index(["score", "stage", "target"]).loc[("gapped", "pruned", "A")]
    assert own_a.own == pytest.approx((0.80 + 0.82) / 2 / 0.90) and own_a.other == pytest.approx(0.675 / 0.90)


def test_near_and_far_transfer_follow_the_task_domains(grid):
    pairs = own_other_pairs(grid, DOMAINS)
    zero_shot = pairs[(pairs.score == "gapped") & (pairs.stage == "pruned")].set_index(["target", "seed"])
    assert zero_shot.loc[("A", 0), "gap_near"] == pytest.approx(0.80 - 0.75)  # B shares A's domain
    assert zero_shot.loc[("A", 0), "gap_far"] == pytest.approx(0.80 - 0.60)
    assert np.isnan(zero_shot.loc[("C", 1), "gap_near"])  # C is alone in its domain
    row = own_other_table(pairs).set_index(["score", "stage"]).loc[("gapped", "pruned")]
    assert row.gap_near_n == 4 and row.gap_far_n == 6
    assert row.gap_near_mean == pytest.approx(np.mean(_hand_gaps("near")))
    assert row.gap_far_mean == pytest.approx(np.mean(_hand_gaps("far")))
    assert not split_by_domain({t: "x" for t in TASKS}, TASKS) and not split_by_domain({"A": "x"}, TASKS)
    assert own_other_pairs(grid, {t: "x" for t in TASKS}).gap_near.isna().all()


def test_p1_blocks_show_near_and_far_only_with_domains(grid, tmp_path):
    split = own_mask_blocks(grid, SuiteFacts(domains=DOMAINS, classes={t: 5 for t in TASKS}), tmp_path, "figures")
    one = own_mask_blocks(grid, SuiteFacts(), tmp_path, "figures")
    header = next(b for b in split if isinstance(b, Table)).header
    assert "own − near" in header and "own − far" in header
    assert "own − near" not in next(b for b in one if isinstance(b, Table)).header
    assert "One domain" in to_markdown(one) and "nan" not in to_markdown(split + one).lower()
    assert (tmp_path / "p1_own_vs_other.png").stat().st_size > 5_000
    assert any(isinstance(b, Figure) and b.path == "figures/p1_own_vs_other.png" for b in split)


def test_a_verdict_is_withheld_at_chance_and_where_the_mask_ignores_the_source(grid):
    same = {s: {t: 0.7 for t in TASKS} for s in TASKS}
    chance = {s: {t: 0.205 + 0.01 * (s == t) for t in TASKS} for s in TASKS}
    rows = _rows("same", same, 0.0) + _rows("dead", chance, 0.0)
    table = own_other_table(own_other_pairs(pd.DataFrame(rows)), chance=0.2)
    notes = table[table.stage == "pruned"].set_index("score").note
    assert notes["same"] == SOURCE_FREE and notes["dead"] == AT_CHANCE


def test_palette_is_fixed_and_the_baseline_comes_first():
    assert score_colour("kfac") == SCORE_COLOURS["kfac"] == score_colour("kfac")
    assert len(set(SCORE_COLOURS.values())) == len(SCORE_COLOURS)
    assert score_colour("my-new-score") == score_colour("my-new-score") and score_colour("my-new-score") in EXTRA
    assert baseline_first(["kfac", "snip", "magnitude", "kfac"]) == ["magnitude", "kfac", "snip"]
    assert baseline_first(["kfac", "snip"]) == ["kfac", "snip"]


def _surface(score: str) -> Surface:
    alphas = betas = np.linspace(-1, 2, 3)
    loss = np.ones((2, 3, 3)) + np.arange(9).reshape(3, 3)
    return Surface(alphas, betas, np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), ["A", "B"], loss, loss / 10,
                   {"encoder": "enc", "score": score, "sparsity": 0.5, "source": "A", "bn": "eval"})


def test_one_score_has_one_colour_in_every_figure(grid):
    assert matplotlib.get_backend().lower() == "agg"  # headless
    results = grid.assign(score=grid.score.map({"gapped": "kfac", "flat": "magnitude"}))
    fig3 = draw_fig3(results, chance=0.2)
    ax = fig3.axes[0]
    bars = {c.get_label(): c for c in ax.containers if hasattr(c, "patches")}
    assert to_hex(bars["kfac (zero-shot)"].patches[0].get_facecolor(), keep_alpha=False) == SCORE_COLOURS["kfac"]
    labels = [c.get_label() for c in ax.containers if hasattr(c, "patches")]
    assert labels[0].startswith("magnitude")  # the baseline first in bars and legend
    assert any(line.get_label() == "chance (0.20)" and line.get_ydata()[0] == 0.2 for line in ax.lines)
    fig4 = draw_fig4(_surface("kfac"))
    marked = [line for line in fig4.axes[0].lines if line.get_label() == "pruned θ₀⊙m"]
    assert to_hex(marked[0].get_color()) == SCORE_COLOURS["kfac"]
    pairs = pd.DataFrame({"encoder": "enc", "score": ["kfac", "magnitude"], "sparsity": 0.5, "pair": "sources",
                          "source_a": "A", "source_b": "B", "seed_a": 0, "seed_b": 0, "iou": [0.5, 1.0],
                          "iou_random": 1 / 3, "spearman": [0.8, 1.0]})
    lines = {line.get_label(): line for line in draw_agreement(pairs).axes[0].lines}
    assert to_hex(lines["kfac"].get_color()) == SCORE_COLOURS["kfac"]


def test_fig3_shows_replicates_as_dots_when_there_are_three_or_fewer(grid):
    few = grid[grid.source.isin(["A", "B"]) & (grid.seed == 0)]  # 2 replicates per bar
    ax = draw_fig3(few).axes[1]
    dots = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections if len(c.get_offsets())])
    assert len(dots) > 0 and ((dots >= 0) & (dots <= 1)).all()
    bars = next(c for c in ax.containers if c.get_label() == "gapped (zero-shot)")
    segments = bars.errorbar.lines[2][0].get_segments()
    assert all(len(s) == 0 or np.isnan(s).any() for s in segments)  # no t interval drawn


TWO = np.array([0.95, 0.45])  # two replicates far apart: their t interval leaves [0, 1]


def test_report_with_two_replicates_prints_no_nan_and_no_accuracy_outside_0_1(tmp_path):
    rows = []
    for source in ("A", "B"):
        for score in ("magnitude", "kfac"):
            for target in ("A", "B"):
                own = target == source
                for stage in ("unpruned", "pruned", "recovered"):
                    acc = {"unpruned": 0.97, "pruned": TWO[int(source == "B")] - 0.05 * (score == "kfac"),
                           "recovered": TWO[int(source == "B")] + 0.02 * own}[stage]
                    rows.append({"encoder": "enc", "score": score, "sparsity": 0.4, "source": source,
                                 "recovery": "sgd", "structure": "weights", "seed": 0, "target": target,
                                 "is_source": own, "stage": stage, "accuracy": acc, "loss": 1 - acc,
                                 "protocol": "heldout", "suite": "synthetic", "unit": f"{score}-{source}"})
    config = config_from_dict({"name": "two", "encoders": ["tiny-test-cnn"], "scores": ["magnitude", "kfac"],
                               "sparsities": [0.4]})
    (tmp_path / "config.json").write_text(json.dumps(to_jsonable(config)))
    pd.DataFrame(rows).to_parquet(tmp_path / "results.parquet")
    md = build_report(tmp_path).read_text()
    assert "nan" not in md.lower()
    assert "| n |" in md and "| 0 |" not in md  # no row without a replicate
    plain = re.findall(r"(?<![+\-\d.])(\d\.\d{3}) \[(-?\d\.\d{3}), (-?\d\.\d{3})\]", md)  # accuracy: mean [low, high]
    assert plain and all(0 <= float(lo) <= float(m) <= float(hi) <= 1 for m, lo, hi in plain)
    changes = re.findall(r"\[([+-]\d+\.\d)%, ([+-]\d+\.\d)%\]", md)  # relative changes: never below −100%
    assert changes and all(float(lo) >= -100 for lo, _ in changes) and ("-100.0", "+294.5") in changes
    assert "## Data-dependent scores vs magnitude" in md and "## P1: is pruning with the source alone" in md
    figures = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", md)
    assert "figures/fig3.png" in figures and "figures/p1_own_vs_other.png" in figures


@pytest.fixture(scope="module")
def two_seed_run(tmp_path_factory):
    """A finished tiny run with two sources and two seeds (tests/conftest.py registers the tiny encoder, suite
    and score)."""
    out = tmp_path_factory.mktemp("seeds")
    config = config_from_dict({
        "name": "seeds", "encoders": ["tiny-test-cnn"],
        "suite": {"name": "tiny-test-suite", "calib_per_class": 4, "eval_per_class": 4},
        "scores": ["magnitude", "tiny-test-snip"], "sparsities": [0.5], "sources": ["task-0", "task-1"],
        "seeds": [0, 1],
        "finetune": {"epochs": 1, "lr": 0.05, "milestones": [1], "batch_size": 6}, "device": "cpu", "precision": "fp32",
    })
    run_grid(config, out, show_progress=False)
    return run_dir(config, out)


def test_agreement_across_seeds_is_the_reference_level(two_seed_run):
    pairs = mask_agreement(two_seed_run)
    assert set(pairs["pair"]) == {"sources", "seeds"}
    seeds = pairs[pairs["pair"] == "seeds"]
    assert len(seeds) == 2 * 2 and (seeds.source_a == seeds.source_b).all() and (seeds.seed_a != seeds.seed_b).all()
    sources = pairs[pairs["pair"] == "sources"]
    assert (sources.seed_a == sources.seed_b).all() and (sources.source_a != sources.source_b).all()
    summary = agreement_summary(pairs).set_index("score")
    assert summary.loc["magnitude", "iou_seeds"] == 1.0  # data-free: one mask whatever the seed
    want = seeds[seeds.score == "tiny-test-snip"].iou.mean()
    assert summary.loc["tiny-test-snip", "iou_seeds"] == pytest.approx(want)
    assert summary.loc["tiny-test-snip", "pairs"] == 2  # one pair of sources per seed
    lines = {line.get_label(): line for line in draw_agreement(pairs).axes[0].lines}
    assert np.allclose(lines["tiny-test-snip: across seeds"].get_ydata(), want)
