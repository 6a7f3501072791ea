"""P1 and P2 on two suites side by side: each run restricted to the settings both hold, then each suite's own
statistics, equal to its own study's on the restricted results."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

from pait.cache import to_jsonable
from pait.config import config_from_dict
from pait.report.claims import p2_table
from pait.report.document import Table, to_markdown
from pait.report.own_mask import own_other_pairs, own_other_table
from pait.report.suite_compare import SuiteRun, common_settings, suite_p1, suite_p2
from pait.report.suite_compare_blocks import suite_compare_blocks
from pait.report.suite_facts import SuiteFacts

GREY = {"digits-a": "digits", "digits-b": "digits", "clothing-a": "clothing", "clothing-b": "clothing"}
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "findings.py"
COLOUR = {"birds": "animals", "mammals": "animals", "food": "food", "fruit": "food"}


def frame(domains: dict[str, str], scores, sparsities, seeds, own_bonus: float) -> pd.DataFrame:
    """Every unit of every setting; a target is ``own_bonus`` better with its own mask, re-training adds 0.02 near
    and removes 0.01 far, and every cell differs a little."""
    tasks, rows = list(domains), []
    for score in scores:
        for sparsity in sparsities:
            for seed in seeds:
                for source in tasks:
                    for target in tasks:
                        pruned = 0.6 + 0.01 * tasks.index(target) + 0.003 * seed + 0.002 * tasks.index(source)
                        pruned += own_bonus * (source == target)
                        near = domains[source] == domains[target]
                        for stage, acc in (("unpruned", 0.9), ("pruned", pruned),
                                           ("recovered", pruned + (0.02 if near else -0.01) + 0.001 * seed)):
                            rows.append({"encoder": "enc", "score": score, "sparsity": sparsity, "recovery": "sgd",
                                         "source": source, "target": target, "is_source": source == target,
                                         "seed": seed, "stage": stage, "accuracy": acc, "loss": 1 - acc,
                                         "protocol": "heldout", "suite": "s", "unit": f"{score}-{sparsity}-{source}-{seed}"})
    return pd.DataFrame(rows)


def runs() -> dict[str, SuiteRun]:
    grey = frame(GREY, ["magnitude", "kfac", "snip"], [0.2, 0.4, 0.6], [0, 1, 2], own_bonus=0.05)
    colour = frame(COLOUR, ["magnitude", "kfac"], [0.2, 0.4], [0], own_bonus=0.0)
    facts = {label: SuiteFacts((), dict(d), dict.fromkeys(d, 10)) for label, d in (("grey", GREY), ("colour", COLOUR))}
    return {"grey": SuiteRun(grey, facts["grey"], dict.fromkeys(GREY, 0.1)),
            "colour": SuiteRun(colour, facts["colour"], dict.fromkeys(COLOUR, 0.1))}


def test_runs_are_restricted_to_the_settings_every_suite_holds():
    restricted = common_settings(runs())
    for table in restricted.values():
        assert set(table.score) == {"magnitude", "kfac"} and set(table.sparsity) == {0.2, 0.4}
        assert set(table.seed) == {0}
    assert len(restricted["grey"]) == len(restricted["colour"]) == 2 * 2 * 4 * 4 * 3


def test_each_suite_gets_its_own_studys_statistics_on_the_restricted_results():
    given = runs()
    restricted = common_settings(given)
    p1 = suite_p1(given)
    for label in ("grey", "colour"):
        run = given[label]
        own = own_other_table(own_other_pairs(restricted[label], run.facts.domains), chance=0.1)
        mine = p1[p1.suite == label].drop(columns="suite").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, own)
        p2 = p2_table(restricted[label], chance=run.chance, domains=run.facts.domains)
        pd.testing.assert_frame_equal(suite_p2(given).query("suite == @label").drop(columns="suite")
                                      .reset_index(drop=True), p2)
    zero_shot = p1[p1.stage == "pruned"].set_index("suite")
    assert zero_shot.loc["grey", "mean"].to_numpy() == pytest.approx(0.05)  # the own-mask bonus, exactly
    assert zero_shot.loc["colour", "mean"].to_numpy() == pytest.approx(0.0, abs=1e-12)
    gains = suite_p2(given).set_index(["suite", "transfer"])["mean"]
    assert gains.loc[("colour", "near")].to_numpy() == pytest.approx(0.02)  # seed 0 only: no seed term
    assert gains.loc[("colour", "far")].to_numpy() == pytest.approx(-0.01)


def test_blocks_show_one_row_per_suite_and_setting_and_no_nan():
    blocks = suite_compare_blocks(runs())
    tables = [b for b in blocks if isinstance(b, Table)]
    assert len(tables) == 2
    p1_rows, p2_rows = tables[0].rows, tables[1].rows
    assert len(p1_rows) == 2 * 2 * 2  # suite x score x sparsity, zero-shot only
    assert [r[0] for r in p1_rows[:2]] == ["grey", "colour"]  # each setting's suites side by side, in the runs' order
    assert len(p2_rows) == 2 * 2 * 2 * 3  # x all / near / far
    assert "nan" not in to_markdown(blocks).lower()


def test_runs_that_share_no_setting_say_not_measured():
    given = runs()
    given["colour"] = SuiteRun(given["colour"].results.assign(seed=7), given["colour"].facts, given["colour"].chance)
    text = to_markdown(suite_compare_blocks(given))
    assert "Not measured" in text and "|" not in text


def test_findings_suite_section_needs_both_studies(tmp_path):
    spec = importlib.util.spec_from_file_location("findings", SCRIPT)
    findings = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(findings)
    assert set(findings.SUITE_STUDIES) <= set(findings.STUDIES)
    config = config_from_dict({"name": "s", "encoders": ["tiny-test-cnn"], "scores": ["kfac"], "sparsities": [0.5]})
    studies = list(findings.SUITE_STUDIES)
    for k, study in enumerate(studies):
        assert findings.suite_blocks(tmp_path) == []  # fewer than two suites: no section
        (tmp_path / study).mkdir()
        frame(GREY, ["kfac"], [0.4], [0], own_bonus=0.03 * k).to_parquet(tmp_path / study / "results.parquet")
        (tmp_path / study / "config.json").write_text(json.dumps(to_jsonable(config)))
    md = to_markdown(findings.suite_blocks(tmp_path))
    assert md.startswith("## P1 and P2 on a grey suite and a colour suite")
    labels = [line.split(" | ")[0].lstrip("| ") for line in md.splitlines() if line.startswith("| ")][1:3]  # after the header
    assert labels == [findings.SUITE_STUDIES[s] for s in studies]
