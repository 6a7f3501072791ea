"""``mask_options: {densities_from: S}``: the grid adds units of ``magnitude`` at S's per-layer kept counts; a
config without it keeps every unit key and stage, and adding it computes only the new units."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from gridutil import logged_stages, tiny_config, write_config
from safetensors.torch import load_file

from pait.cli import main
from pait.masks import global_mask, layer_counts
from pait.report.allocation import allocation_table
from pait.report.run_folder import read_results


def run(config: dict, out: Path) -> pd.DataFrame:
    path = write_config(out.parent / f"{out.name}.yaml", config)
    assert main(["run", str(path), "--out", str(out), "--quiet", "--no-report"]) == 0
    return pd.read_parquet(out / config["name"] / "results.parquet")


def units(out: Path) -> list[dict]:
    return json.loads((out / "tiny" / "units.json").read_text())


def stage_file(out: Path, entry: dict, key: str, name: str) -> dict[str, torch.Tensor]:
    return load_file(str((out / "tiny" / entry[key] / name).resolve()))


def counts(out: Path) -> dict[str, int]:
    return pd.Series([s for s, _ in logged_stages(out / "tiny")], dtype=object).value_counts().to_dict()


def check_transplants(out: Path, source: str = "kfac") -> int:
    """Every transplant unit keeps exactly the per-layer counts of ``source``'s unit at its sparsity and, within
    each layer, the largest |theta| (magnitude scores); returns how many of them differ from plain magnitude."""
    entries = units(out)
    plain = {(e["score"], e["sparsity"], e["recovery"]): e for e in entries if "mask" not in e}
    transplants = [e for e in entries if e.get("mask") == f"densities_from={source}"]
    assert transplants and all(e["score"] == "magnitude" for e in transplants)
    differ = 0
    for e in transplants:
        mask = {k: v.bool() for k, v in stage_file(out, e, "unit_dir", "mask.safetensors").items()}
        other = stage_file(out, plain[(source, e["sparsity"], e["recovery"])], "unit_dir", "mask.safetensors")
        assert layer_counts(mask) == layer_counts({k: v.bool() for k, v in other.items()})
        theta2 = stage_file(out, e, "scores_dir", "scores.safetensors")  # the magnitude scores: theta^2
        for name, m in mask.items():
            kept, pruned = theta2[name][m], theta2[name][~m]
            assert not len(kept) or not len(pruned) or kept.min() >= pruned.max(), name
        magnitude = stage_file(out, plain[("magnitude", e["sparsity"], e["recovery"])], "unit_dir", "mask.safetensors")
        differ += layer_counts(mask) != layer_counts({k: v.bool() for k, v in magnitude.items()})
        assert layer_counts(global_mask(theta2, e["sparsity"])) == layer_counts({k: v.bool() for k, v in magnitude.items()})
    return differ


def test_densities_from_adds_transplant_units_and_keeps_every_plain_key(tmp_path):
    out = tmp_path / "out"
    base = tiny_config(scores=["magnitude", "kfac"], sources=["t1"], recoveries=["none"])
    plain = run(base, out)
    before = counts(out)
    plain_units = units(out)
    assert "mask" in plain.columns and set(plain["mask"]) == {""}
    both = run({**base, "mask_options": {"densities_from": "kfac"}}, out)
    added = (pd.Series(counts(out)) - pd.Series(before)).fillna(0).to_dict()
    assert added == {"data": 0, "heads": 0, "scores": 0, "unit": 2}  # kfac's scores stage is reused
    assert units(out)[: len(plain_units)] == plain_units  # same unit ids and stage folders
    old = both[both["mask"] == ""].reset_index(drop=True)
    pd.testing.assert_frame_equal(old, plain, check_exact=True)
    transplant = both[both["mask"] != ""]
    assert set(transplant["mask"]) == {"densities_from=kfac"} and set(transplant.score) == {"magnitude"}
    assert set(transplant.unit).isdisjoint(set(plain.unit)) and transplant.unit.nunique() == 2
    assert check_transplants(out) >= 1  # kfac's allocation differs from magnitude's at some sparsity
    shown = read_results(out / "tiny")  # as the report reads it: the transplant is a method of its own
    assert set(shown.score) == {"magnitude", "kfac", "magnitude@kfac"}
    assert (shown.score == "magnitude@kfac").sum() == (both["mask"] != "").sum()
    pd.testing.assert_frame_equal(allocation_table(shown), allocation_table(both))
    parts = allocation_table(both).pivot_table(index=["sparsity", "stage", "metric"], columns="part", values="mean")
    assert len(parts) == 2 * 1 * 2  # sparsities x stages (recovery none: zero-shot only) x metrics
    pd.testing.assert_series_equal(parts.total, parts.allocation + parts.selection, check_names=False, atol=1e-12)


def test_packed_retraining_of_transplant_units_keeps_their_counts(tmp_path):
    out = tmp_path / "out"
    config = tiny_config(scores=["magnitude", "kfac"], sources=["t1"], recoveries=["sgd"],
                         mask_options={"densities_from": ["kfac"]},
                         finetune={"epochs": 1, "lr": 0.05, "milestones": [1], "batch_size": 8, "pack": 2})
    table = run(config, out)
    assert set(table["mask"]) == {"", "densities_from=kfac"}
    check_transplants(out)


@pytest.mark.parametrize("value, words", [
    ("nothing", "unknown score"), ("magnitude", "itself"), (["kfac", "kfac"], "repeat"), (3, "score name"),
])
def test_bad_densities_from_is_refused_before_any_stage(tmp_path, capsys, value, words):
    path = write_config(tmp_path / "c.yaml", tiny_config(mask_options={"densities_from": value}))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mask_options.densities_from" in err[0] and words in err[0]
    assert not (tmp_path / "out" / "stages").exists()
