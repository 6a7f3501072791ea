"""bench/practitioner_table.py's aggregation on known answers: retention per unit, the 10% count, INT8 rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pait.report.stats import crossed_ci

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "practitioner_table.py"


@pytest.fixture(scope="module")
def table():
    spec = importlib.util.spec_from_file_location("bench_practitioner_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _units() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for target in (1.5, 2.0):
        for source in ("a", "b", "c"):
            for seed in (0, 1):
                unpruned = 0.8 + 0.05 * rng.random()
                rows.append({"target": target, "source": source, "seed": seed, "predicted": target,
                             "achieved": target * (1 + 0.2 * rng.random() - 0.05), "macs": 50e6, "dense_macs": 100e6,
                             "unpruned_source": 0.9, "unpruned_transfer": unpruned, "recovered_source": 0.85,
                             "recovered_transfer": unpruned * (0.9 + 0.05 * rng.random())})
    return pd.DataFrame(rows)


def test_target_rows_hold_per_unit_retention_and_the_ten_percent_count(table) -> None:
    units = _units()
    rows = table.target_table(units)
    assert rows[0]["target"] is None and rows[0]["mmacs"] == pytest.approx(100.0)
    for row in rows[1:]:
        g = units[units.target == row["target"]]
        ratio = g.recovered_transfer / g.unpruned_transfer
        expected = crossed_ci(ratio, g.source, g.seed)
        assert row["retention"]["mean"] == pytest.approx(float(ratio.mean()), abs=1e-12)
        assert row["retention"]["low"] == pytest.approx(expected.low, abs=1e-12)
        assert row["within_10pct"] == int(((g.achieved / row["target"] - 1).abs() <= 0.10).sum())
        assert row["achieved"]["median"] == pytest.approx(float(g.achieved.median()))
        assert 0.0 <= row["transfer"]["low"] <= row["transfer"]["high"] <= 1.0


def test_int8_rows_group_dense_apart_from_each_target(table) -> None:
    rows = [{"seed": s, "source": src, "target": t, "int8_source": 0.9, "int8_transfer": 0.6 + 0.01 * s,
             "unpruned_transfer": 0.8} for s in (0, 1) for src in ("a", "b") for t in (None, 1.5)]
    out = table.int8_table(rows)
    assert [r["target"] for r in out] == [None, 1.5]
    assert all(r["n"] == 4 for r in out)
    assert out[0]["retention"]["mean"] == pytest.approx(np.mean([0.6 / 0.8, 0.61 / 0.8]))
    markdown = table.markdown({"targets": table.target_table(_units()), "int8": out, "speed": []})
    assert "| dense |" in markdown and "| 1.5x |" in markdown and "nan" not in markdown
