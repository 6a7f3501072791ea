"""The grid's replicate and recovery axes: `seeds` and `recoveries` expand units, rows carry both, and
adding a seed or a recovery to a finished grid reuses every finished stage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from gridutil import logged_stages, tiny_config, write_config

from pait.cli import main


def run(config: dict, out: Path, *overrides: str) -> pd.DataFrame:
    path = write_config(out.parent / f"{out.name}.yaml", config)
    assert main(["run", str(path), *overrides, "--out", str(out), "--quiet", "--no-report"]) == 0
    return pd.read_parquet(out / config["name"] / "results.parquet")


def computed(out: Path) -> pd.Series:
    return pd.Series([s for s, _ in logged_stages(out / "tiny")], dtype=object).value_counts()


def test_seeds_expand_units_change_the_split_and_more_seeds_reuse_finished_units(tmp_path):
    out = tmp_path / "out"
    one = run(tiny_config(seeds=[0], scores=["random"], sources=["t1"]), out)
    before = computed(out).to_dict()
    assert before == {"data": 1, "heads": 1, "scores": 1, "unit": 2}
    both = run(tiny_config(seeds=[0, 1], scores=["random"], sources=["t1"]), out)
    added = (computed(out) - pd.Series(before)).to_dict()
    assert added == {"data": 1, "heads": 1, "scores": 1, "unit": 2}  # only seed 1's stages
    assert set(both.seed) == {0, 1} and set(one.seed) == {0}
    pd.testing.assert_frame_equal(both[both.seed == 0].reset_index(drop=True), one, check_exact=True)
    # a seed sets the calibration/evaluation split: the unpruned accuracies differ between seeds
    unpruned = both[both.stage == "unpruned"].groupby("seed").accuracy.apply(list)
    assert unpruned[0] != unpruned[1]


def test_recoveries_axis_rows_and_one_shot_units_skip_retraining(tmp_path):
    out = tmp_path / "out"
    recoveries = ["none", "bn", "obs", "sequential", "sequential-adaptive", "bn+sequential", "sgd"]
    table = run(tiny_config(recoveries=recoveries, scores=["magnitude"], sources=["t1"]), out)
    assert set(table.recovery) == set(recoveries)
    assert len(table) == len(recoveries) * 2 * 3 * 3  # recoveries x sparsities x targets x stages
    wide = table.pivot_table(index=["recovery", "sparsity", "target"], columns="stage", values="accuracy")
    none = wide.loc["none"]
    assert (none["recovered"] == none["pruned"]).all()  # no recovery: nothing changes
    pruned = wide["pruned"].unstack("recovery")
    assert (pruned.nunique(axis=1) == 1).all()  # every recovery starts from the same pruned encoder
    assert computed(out).to_dict() == {"data": 1, "heads": 1, "scores": 1, "unit": len(recoveries) * 2}
    for unit in json.loads((out / "tiny" / "units.json").read_text()):  # each recovery's wall time is kept
        seconds = json.loads((out / "tiny" / unit["unit_dir"] / "metrics.json").read_text())["recovery_seconds"]
        assert isinstance(seconds, float) and seconds >= 0


def test_adding_a_recovery_reuses_the_finished_units(tmp_path):
    out = tmp_path / "out"
    run(tiny_config(recoveries=["sgd"], scores=["magnitude"], sources=["t1"]), out)
    before = computed(out).to_dict()
    run(tiny_config(recoveries=["sgd", "none"], scores=["magnitude"], sources=["t1"]), out)
    assert (computed(out) - pd.Series(before)).fillna(0).to_dict() == {
        "data": 0, "heads": 0, "scores": 0, "unit": 2}


@pytest.mark.parametrize("field, value, words", [
    ("seeds", [], "seeds"), ("seeds", [0, 0], "seeds"), ("seeds", [-1], "seeds"),
    ("recoveries", ["magic"], "magic"), ("recoveries", ["sgd", "sgd"], "recoveries"),
])
def test_bad_axis_values_are_one_line_errors(tmp_path, capsys, field, value, words):
    path = write_config(tmp_path / "c.yaml", tiny_config(**{field: value}))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pait: error:") and words in err[0]
    assert not (tmp_path / "out" / "stages").exists()
