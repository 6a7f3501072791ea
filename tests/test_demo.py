"""The embedded default demo end to end (real weights, real images): a few minutes on 2 CPU cores."""

import time

import pandas as pd
import pytest

from pait.cli import main
from pait.report.p1 import agreement_summary, mask_agreement


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

    assert {"magnitude", "fisher_diag", "kfac"} <= set(results.score) and results.sparsity.nunique() >= 2
    assert results.source.nunique() >= 2
    low = results.sparsity.min()
    src = results[(results.score == "magnitude") & (results.sparsity == low) & results.is_source]
    by_stage = src.groupby("stage").accuracy.mean()
    assert by_stage["recovered"] >= by_stage["pruned"], by_stage

    # masks from different sources: identical for data-free magnitude, different for data-dependent scores
    agreement = agreement_summary(mask_agreement(run)).set_index(["score", "sparsity"]).iou
    assert (agreement.loc["magnitude"] == 1.0).all(), agreement
    for score in ("fisher_diag", "kfac"):
        assert (agreement.loc[score] < 1.0).all(), agreement
    report = (run / "report.md").read_text()
    assert "Each score against `magnitude`, paired" in report

    start = time.perf_counter()
    assert main(["demo", "--out", str(tmp_path), "--quiet"]) == 0
    second = time.perf_counter() - start
    assert second < 0.2 * first, (first, second)
    assert pd.read_parquet(run / "results.parquet").equals(results)
