"""The embedded default demo end to end (real weights, real images): a few minutes on 2 CPU cores."""

import time

import pandas as pd
import pytest

from pait.cli import main


@pytest.mark.demo
@pytest.mark.real_weights
def test_demo_writes_results_figure_and_report_and_reuses_its_cache(tmp_path):
    start = time.perf_counter()
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    first = time.perf_counter() - start

    run = tmp_path / "demo"
    results = pd.read_parquet(run / "results.parquet")
    assert (run / "figures" / "fig3.png").stat().st_size > 10_000
    assert "Fig. 3" in (run / "report.md").read_text()
    assert set(results.stage) == {"unpruned", "pruned", "recovered"}
    expected_columns = {"encoder", "score", "sparsity", "source", "target", "stage", "accuracy", "loss", "seed"}
    assert expected_columns <= set(results.columns)

    low = results.sparsity.min()
    src = results[(results.score == "magnitude") & (results.sparsity == low) & results.is_source]
    by_stage = src.groupby("stage").accuracy.mean()
    assert by_stage["recovered"] >= by_stage["pruned"], by_stage

    start = time.perf_counter()
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    second = time.perf_counter() - start
    assert second < 0.2 * first, (first, second)
    assert pd.read_parquet(run / "results.parquet").equals(results)
