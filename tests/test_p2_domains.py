"""P2 split into near and far transfer by task domain, and the P2 dose-response table across recipes."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from pait.cache import to_jsonable
from pait.config import config_from_dict
from pait.report import build_report
from pait.report.claims import p2_dose_table, p2_table, source_fit
from pait.report.document import Table, to_markdown
from pait.report.p2_blocks import p2_blocks, p2_dose_blocks
from pait.report.pairwise import pairwise_table
from pait.report.stat_blocks import claim_blocks
from pait.report.stats import FAILS, HOLDS, MARGIN, UNCLEAR, crossed_ci, crossed_paired

# the embedded suite's tasks and domains: each source has one near and two far transfer targets
DOMAINS = {"digits-0-4": "digits", "digits-5-9": "digits", "clothing-a": "clothing", "clothing-b": "clothing"}
TASKS, SEEDS = list(DOMAINS), [0, 1, 2]
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "findings.py"


def _gain_by_index(source: str, target: str, seed: int) -> float:
    """A known gain per (source, target, seed): near targets gain, far ones lose, every cell differs."""
    near = DOMAINS[source] == DOMAINS[target]
    return (0.04 if near else -0.02) + 0.003 * TASKS.index(target) - 0.002 * TASKS.index(source) + 0.001 * seed ** 2


def results_frame(gain=_gain_by_index, tasks=TASKS, seeds=SEEDS, recovery: str = "sgd") -> pd.DataFrame:
    """Every (source, seed) unit of one setting x every task x 3 stages; recovered = pruned + ``gain``."""
    rows = []
    for source in tasks:
        for seed in seeds:
            for target in tasks:
                pruned = 0.6 + 0.01 * tasks.index(target) + 0.005 * seed
                for stage, acc in (("unpruned", 0.9), ("pruned", pruned),
                                   ("recovered", pruned + gain(source, target, seed))):
                    rows.append({"encoder": "enc", "score": "kfac", "sparsity": 0.5, "recovery": recovery,
                                 "source": source, "target": target, "is_source": source == target, "seed": seed,
                                 "stage": stage, "accuracy": acc, "loss": 1 - acc, "protocol": "heldout",
                                 "suite": "embedded", "unit": f"{source}-{seed}"})
    return pd.DataFrame(rows)


def _hand(kind: str, tasks=TASKS, domains=DOMAINS) -> tuple[list[float], list[str], list[int]]:
    """Per unit, source by source and seed by seed: the mean gain over its transfer targets of ``kind``."""
    gains, sources, seeds = [], [], []
    for source in tasks:
        for seed in SEEDS:
            chosen = [t for t in tasks if t != source and (kind == "all" or (domains[t] == domains[source])
                                                            == (kind == "near"))]
            if chosen:
                gains.append(float(np.mean([_gain_by_index(source, t, seed) for t in chosen])))
                sources.append(source)
                seeds.append(seed)
    return gains, sources, seeds


def test_near_and_far_rows_are_the_means_over_the_right_targets():
    table = p2_table(results_frame(), domains=DOMAINS).set_index("transfer")
    assert table.index.tolist() == ["all", "near", "far"]
    for kind, pairs in (("all", 36), ("near", 12), ("far", 24)):
        gains, sources, seeds = _hand(kind)
        p = crossed_paired(gains, sources, seeds)
        row = table.loc[kind]
        assert row.n == 12 and row.pairs == pairs
        assert (row["mean"], row.low, row.high) == pytest.approx((p.mean, p.low, p.high), abs=1e-12)
    near = _hand("near")[0]
    assert table.loc["near", "mean"] == pytest.approx(np.mean(near)) and table.loc["near", "mean"] > 0.03
    assert table.loc["far", "worst"] == pytest.approx(min(_gain_by_index(s, t, 0) for s in TASKS for t in TASKS
                                                          if DOMAINS[s] != DOMAINS[t]))
    assert table.loc["far", "violations"] == 24  # every far gain is negative by construction, no near one
    assert table.loc["near", "violations"] == 0
    plain = p2_table(results_frame())  # no domains: the one row over all targets, as before
    assert plain.transfer.tolist() == ["all"]
    assert plain.iloc[0][["n", "mean", "low", "high", "pairs"]].tolist() == pytest.approx(
        table.loc["all", ["n", "mean", "low", "high", "pairs"]].tolist())


def test_a_kind_without_targets_gives_no_row():
    alone = {t: t for t in TASKS}  # every task its own domain: no near target anywhere
    table = p2_table(results_frame(), domains=alone)
    assert table.transfer.tolist() == ["all", "far"]
    columns = ["mean", "low", "high"]
    assert table.iloc[0][columns].tolist() == pytest.approx(table.iloc[1][columns].tolist())  # far is every target
    three = {"digits-0-4": "a", "digits-5-9": "a", "clothing-a": "a", "clothing-b": "b"}  # clothing-b: no near target
    near = p2_table(results_frame(), domains=three).set_index("transfer").loc["near"]
    gains, sources, seeds = _hand("near", domains=three)
    assert near.n == len(gains) == 9 and near.sources == 3 and near.pairs == 3 * 3 * 2
    assert near["mean"] == pytest.approx(np.mean(gains), abs=1e-12)
    partial = {t: d for t, d in DOMAINS.items() if t != "clothing-b"}  # a task without a domain: no split
    assert p2_table(results_frame(), domains=partial).transfer.tolist() == ["all"]
    assert not p2_table(results_frame(), domains=DOMAINS).isna()[["mean", "low", "high", "n"]].any().any()


def _borderline(p_holds: float):
    """A gain per unit (the same on every target, so near, far and all rows agree) whose one-sided p that P2 holds
    is ``p_holds``: unit noise, shifted so that (mean + margin) / se is the t quantile."""
    noise = {(s, seed): v for (s, seed), v in zip([(s, seed) for s in TASKS for seed in SEEDS],
                                                  np.random.default_rng(3).normal(0, 0.01, len(TASKS) * len(SEEDS)))}
    ci = crossed_ci(list(noise.values()), np.repeat(TASKS, len(SEEDS)), np.tile(SEEDS, len(TASKS)))
    shift = ci.se * scipy_stats.t.isf(p_holds, ci.df) - MARGIN - ci.mean
    return lambda source, target, seed: shift + noise[(source, seed)]


def test_holm_family_is_the_whole_table_near_and_far_included():
    table = p2_table(results_frame(_borderline(0.01)), domains=DOMAINS)
    assert table.p_holds.to_numpy() == pytest.approx(0.01, rel=1e-6)
    # alone each row holds (0.01 <= 0.025); three in one family: 3 x 0.01 = 0.03, unclear
    assert (table.verdict == HOLDS).all() and (table.holm_verdict == UNCLEAR).all()


def test_dose_table_labels_each_recipe_and_corrects_each_as_its_own_family():
    run = results_frame(_borderline(0.006))
    runs = {"16 steps": run, "64 steps": run.copy(), "no recovery": run.assign(recovery="none")}
    table = p2_dose_table(runs, DOMAINS)
    assert table.columns[0] == "recipe" and list(table.columns[1:-2]) == list(p2_table(run).columns)
    assert list(table.columns[-2:]) == ["source_pruned", "source_recovered"]
    assert table.recipe.tolist() == ["16 steps"] * 3 + ["64 steps"] * 3  # recovery none: no row, quietly
    assert table.p_holds.to_numpy() == pytest.approx(0.006, rel=1e-6)
    # three equal p-values in a family: Holm multiplies by 3 (0.018, holds); the six together by 6 (0.036)
    assert (table.verdict == HOLDS).all() and (table.holm_verdict == HOLDS).all()
    assert set(p2_table(pd.concat([run, run.assign(encoder="enc2")]), domains=DOMAINS).holm_verdict) == {UNCLEAR}
    shown = [row for b in p2_dose_blocks(table) if isinstance(b, Table) for row in b.rows]
    assert [r[:7] for r in shown[:2]] == [["16 steps", "enc", "kfac", "sgd", "50.00%", "all", "12 (4 x 3)"],
                                          ["64 steps", "enc", "kfac", "sgd", "50.00%", "all", "12 (4 x 3)"]]
    assert [r[5] for r in shown] == ["all", "all", "near", "near", "far", "far"]
    assert p2_dose_table({"none": run.assign(recovery="none")}, DOMAINS).empty


def _intervals(md: str) -> list[tuple[float, float, float]]:
    return [tuple(map(float, m)) for m in re.findall(r"([+-]\d\.\d{3}) \[([+-]\d\.\d{3}), ([+-]\d\.\d{3})\]", md)]


def test_report_blocks_have_no_nan_and_gain_intervals_within_bounds():
    two = ["digits-0-4", "clothing-a"]  # one seed, two sources, no near target: a t interval on 1 df, clipped
    wide = results_frame(lambda s, t, seed: 0.35 if s == "digits-0-4" else -0.3, tasks=two, seeds=[0])
    table = p2_table(wide, domains=DOMAINS)
    assert table.transfer.tolist() == ["all", "far"] and (table.low == -1).all() and (table.high == 1).all()
    md = to_markdown(p2_blocks(table) + claim_blocks(pairwise_table(wide), table))
    assert not re.search(r"\bnan\b", md, re.IGNORECASE)
    shown = _intervals(md)
    assert shown and all(-1 <= lo <= m <= hi <= 1 for m, lo, hi in shown)
    assert "| enc | kfac | sgd | 50.00% | far | 2 (2 x 1) | +0.025 [-1.000, +1.000] |" in md
    assert f"P2 all transfer tasks, {HOLDS} in 0, {FAILS} in 0, {UNCLEAR} in 1 of 1 setting(s)" in md
    assert "; far transfer, " in md and "; near transfer, " not in md


def test_run_report_on_the_embedded_suite_shows_near_and_far(tmp_path):
    config = config_from_dict({"name": "domains", "encoders": ["tiny-test-cnn"], "scores": ["kfac"],
                               "sparsities": [0.5], "seeds": SEEDS})
    (tmp_path / "config.json").write_text(json.dumps(to_jsonable(config)))
    results_frame().to_parquet(tmp_path / "results.parquet")
    md = build_report(tmp_path).read_text()
    assert not re.search(r"\bnan\b", md, re.IGNORECASE)
    p = p2_table(results_frame(), domains=DOMAINS).set_index("transfer")
    for kind in ("all", "near", "far"):
        assert f"| enc | kfac | sgd | 50.00% | {kind} | 12 (4 x 3) | {p.loc[kind, 'mean']:+.3f} [" in md
    assert "P2 all transfer tasks, " in md and "; near transfer, " in md and "; far transfer, " in md


def test_findings_dose_section_uses_the_studies_found(tmp_path):
    spec = importlib.util.spec_from_file_location("findings", SCRIPT)
    findings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(findings)
    assert set(findings.RECIPES) <= set(findings.STUDIES)
    assert findings.dose_blocks(tmp_path) == []  # no study: no section
    config = config_from_dict({"name": "s", "encoders": ["tiny-test-cnn"], "scores": ["kfac"], "sparsities": [0.5]})
    for study in ("study-efficientnet_lite0", "study-efficientnet_lite0_p2_lr"):
        (tmp_path / study).mkdir()
        results_frame().to_parquet(tmp_path / study / "results.parquet")
        (tmp_path / study / "config.json").write_text(json.dumps(to_jsonable(config)))
    md = to_markdown(findings.dose_blocks(tmp_path))
    assert md.startswith("## P2 dose-response")
    rows = [line for line in md.splitlines() if line.startswith("| 16 steps")]
    assert [r.split(" | ")[0] for r in rows] == ["| 16 steps, lr 3e-3", "| 16 steps, lr 3e-2"] * 3
    assert "64 steps" not in md and "ViT" not in md and "nan" not in md.lower()


def test_source_fit_is_the_mean_source_accuracy_per_setting_and_the_dose_table_shows_it():
    results = results_frame()
    fit = source_fit(results)
    assert len(fit) == 1 and fit.columns.tolist() == ["encoder", "score", "recovery", "sparsity", "source_pruned",
                                                      "source_recovered"]
    pruned = [0.6 + 0.01 * TASKS.index(s) + 0.005 * seed for s in TASKS for seed in SEEDS]
    recovered = [p + _gain_by_index(s, s, seed) for p, (s, seed) in zip(pruned, [(s, k) for s in TASKS for k in SEEDS])]
    assert fit.source_pruned.iat[0] == pytest.approx(np.mean(pruned), abs=1e-12)
    assert fit.source_recovered.iat[0] == pytest.approx(np.mean(recovered), abs=1e-12)
    dose = p2_dose_table({"a": results}, DOMAINS)
    assert (dose.source_pruned == fit.source_pruned.iat[0]).all() and len(dose) == 3
    md = to_markdown(p2_dose_blocks(dose))
    assert f"| {fit.source_pruned.iat[0]:.3f} → {fit.source_recovered.iat[0]:.3f} |" in md
