"""A complete tiny grid on CPU through `pait run`: every stage of every unit, both protocols, reproducible."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from fake_imagenet import write_jpeg
from gridutil import logged_stages, stage_dirs, tiny_config, write_config
from safetensors.torch import load_file

from pait.cli import main


def image_folder(root: Path, classes: int = 9, per_class: int = 10) -> Path:
    for c in range(classes):
        for k in range(per_class):
            write_jpeg(root / f"class{c}" / f"{k:03d}.jpg", c * 29 + k)
    return root


def run(config: dict, out: Path, *overrides: str) -> pd.DataFrame:
    path = write_config(out.parent / f"{out.name}.yaml", config)
    assert main(["run", str(path), *overrides, "--out", str(out), "--quiet", "--no-report"]) == 0
    return pd.read_parquet(out / config["name"] / "results.parquet")


@pytest.mark.parametrize("protocol", ["paper", "heldout"])
def test_tiny_grid_runs_every_stage_of_every_unit(tmp_path, protocol):
    root = image_folder(tmp_path / "images")
    suite = {"name": "imagefolder", "options": {"root": str(root), "classes_per_task": 3},
             "protocol": protocol, "calib_per_class": 4, "eval_per_class": 4}
    table = run(tiny_config(suite=suite), tmp_path / "out")

    tasks = ["task01", "task02", "task03"]
    assert len(table) == 3 * 2 * 2 * 3 * 3  # sources x scores x sparsities x targets x stages
    for (source, score, sparsity), unit in table.groupby(["source", "score", "sparsity"]):
        assert sorted(unit.target.unique()) == tasks
        stages = unit.groupby("target").stage.apply(sorted).tolist()
        assert stages == [["pruned", "recovered", "unpruned"]] * 3
        assert unit[unit.is_source].target.unique().tolist() == [source]
    assert set(table.protocol) == {protocol}
    counts = pd.Series([s for s, _ in logged_stages(tmp_path / "out" / "tiny")]).value_counts().to_dict()
    assert counts == {"data": 1, "heads": 1, "scores": 3 * 2, "unit": 3 * 2 * 2}


def test_rerun_in_a_fresh_cache_is_bit_identical(tmp_path):
    first = run(tiny_config(), tmp_path / "a")
    second = run(tiny_config(), tmp_path / "b")
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    units = sorted(k for s, k in stage_dirs(tmp_path / "a") if s == "unit")
    assert units == sorted(k for s, k in stage_dirs(tmp_path / "b") if s == "unit") and len(units) == 12
    for key in units:
        a = load_file(str(tmp_path / "a" / "stages" / "unit" / key / "mask.safetensors"))
        b = load_file(str(tmp_path / "b" / "stages" / "unit" / key / "mask.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[n], b[n]) for n in a)


def test_rerun_in_the_same_cache_computes_nothing(tmp_path):
    first = run(tiny_config(), tmp_path / "out")
    computed = len(logged_stages(tmp_path / "out" / "tiny"))
    second = run(tiny_config(), tmp_path / "out", "sources=[t1]")  # a sub-grid: all cached
    assert len(logged_stages(tmp_path / "out" / "tiny")) == computed
    assert set(second.source) == {"t1"}
    pd.testing.assert_frame_equal(second.reset_index(drop=True),
                                  first[first.source == "t1"].reset_index(drop=True), check_exact=True)
