"""The allocation decomposition on a synthetic results table whose parts are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pait.report.allocation import allocation_differences, allocation_table
from pait.report.allocation_blocks import allocation_blocks
from pait.report.pairwise import METRICS
from pait.report.stat_blocks import fmt_ci
from pait.report.stats import crossed_ci

SOURCES, SEEDS, SPARSITIES = ("a", "b", "c"), (0, 1), (0.2, 0.6)
TARGETS = ("a", "b", "c")


def _rows(score: str, mask: str, accuracy) -> list[dict]:
    """Rows of every unit of one method; ``accuracy(source, seed, sparsity, stage, target)``."""
    rows = []
    for source in SOURCES:
        for seed in SEEDS:
            for sparsity in SPARSITIES:
                for stage in ("unpruned", "pruned", "recovered"):
                    for target in TARGETS:
                        rows.append({"encoder": "e", "score": score, "mask": mask, "sparsity": sparsity,
                                     "source": source, "recovery": "sgd", "structure": "weights", "seed": seed,
                                     "target": target, "is_source": target == source, "stage": stage,
                                     "accuracy": accuracy(source, seed, sparsity, stage, target), "loss": 0.0})
    return rows


def _offset(kind: str, source: str, seed: int, sparsity: float, stage: str, target: str) -> float:
    """A known per-unit part: differs by unit, stage and target so that pairing errors show."""
    i = SOURCES.index(source) + 3 * seed
    scale = {"allocation": 0.01, "selection": -0.004}[kind]
    return scale * (1 + i) * (1 + sparsity) * (2 if stage == "recovered" else 1) * (1 + TARGETS.index(target))


def _table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = {key: rng.uniform(0.3, 0.9) for key in np.ndindex(3, 2, 2, 3, 3)}

    def m(source, seed, sparsity, stage, target):
        key = (SOURCES.index(source), seed, SPARSITIES.index(sparsity),
               ("unpruned", "pruned", "recovered").index(stage), TARGETS.index(target))
        return base[key]

    def t(*unit):
        return m(*unit) + _offset("allocation", *unit)

    def p(*unit):
        return t(*unit) + _offset("selection", *unit)

    rows = _rows("magnitude", "", m) + _rows("magnitude", "densities_from=kfac", t) + _rows("kfac", "", p)
    rows += _rows("random", "", lambda *u: 0.1)  # a score without transplant units: not decomposed
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # row order does not matter


def _expected(kind: str, metric: str, sparsity: float, stage: str) -> np.ndarray:
    values = []
    for seed in SEEDS:
        for source in SOURCES:
            others = [t for t in TARGETS if t != source] if metric == "transfer_acc" else [source]
            parts = ("allocation", "selection") if kind == "total" else (kind,)
            values.append(np.mean([sum(_offset(k, source, seed, sparsity, stage, t) for k in parts) for t in others]))
    return np.array(values)


def test_the_parts_are_the_known_offsets_and_add_up():
    table = allocation_table(_table())
    assert set(table.score) == {"kfac"} and set(table.stage) == {"pruned", "recovered"}
    assert len(table) == 2 * 2 * 2 * 3  # sparsities x stages x metrics x parts
    for row in table.itertuples():
        expected = _expected(row.part, row.metric, row.sparsity, row.stage)
        labels = [(source, seed) for seed in SEEDS for source in SOURCES]  # the order of ``_expected``
        ci = crossed_ci(expected, [s for s, _ in labels], [d for _, d in labels])
        assert row.n == len(SOURCES) * len(SEEDS)
        assert row.mean == pytest.approx(ci.mean, abs=1e-12)
        assert (row.low, row.high) == pytest.approx((ci.low, ci.high), abs=1e-12)
        assert row.low <= row.mean <= row.high
    wide = table.pivot_table(index=["sparsity", "stage", "metric"], columns="part", values="mean")
    np.testing.assert_allclose(wide.total, wide.allocation + wide.selection, atol=1e-12)
    assert (wide.allocation > 0).all() and (wide.selection < 0).all()


def test_only_units_with_all_three_masks_are_paired():
    results = _table()
    results = results[~((results.score == "kfac") & (results.source == "a") & (results.seed == 0))]
    diffs = allocation_differences(results)
    assert len(diffs) == (len(SOURCES) * len(SEEDS) - 1) * len(SPARSITIES) * 2
    assert not ((diffs.source == "a") & (diffs.seed == 0)).any()


def test_a_table_without_transplants_or_a_mask_column_gives_an_empty_table():
    results = _table()
    plain = results[results["mask"] == ""].drop(columns="mask")
    assert allocation_table(plain).empty and list(allocation_table(plain).columns)[:7] == [
        "encoder", "score", "recovery", "sparsity", "stage", "metric", "part"]


def test_the_report_block_shows_each_part_of_the_table_in_its_row():
    table = allocation_table(_table())
    [heading, _, shown] = allocation_blocks(_table())
    assert "Allocation" in heading.text
    assert shown.header[-3:] == ["total", "allocation", "selection"]
    assert len(shown.rows) == len(table) // 3  # one row per (score, sparsity, stage, metric), a column per part
    for row in shown.rows:
        sparsity, stage, metric = float(row[2].rstrip("%")) / 100, row[3], row[4]
        for part, cell in zip(("total", "allocation", "selection"), row[-3:]):
            [r] = table[(table.sparsity == sparsity) & (table.part == part) & (table.metric.map(METRICS) == metric)
                        & (table.stage.map({"pruned": "zero-shot", "recovered": "after sgd"}) == stage)].itertuples()
            assert cell == fmt_ci(r.mean, r.low, r.high, "signed")
        assert row[5] == f"{len(SOURCES) * len(SEEDS)} ({len(SOURCES)} x {len(SEEDS)})"
    assert "nan" not in str(shown.rows)


def test_the_report_block_is_absent_without_transplants():
    results = _table()
    assert allocation_blocks(results[results["mask"] == ""]) == []
