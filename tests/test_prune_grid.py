"""`pait prune` is a one-unit grid: the same accuracy and mask as `pait run` of the same settings, a killed
run resumes from its stage cache, and its flags are exactly the fields of PruneOptions."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import safetensors.torch
import yaml
from colour_images import write_colour_folder

import test_prune  # noqa: F401  (registers the tiny conv net)
import test_structured_prune  # noqa: F401  (registers the tiny EfficientNet-like net)
from pait.cli import main
from pait.commands.prune import add_arguments
from pait.export import load_mask
from pait.prune.options import GROUPS, PruneOptions, flag

HERE = Path(__file__).parent
COMMON = ["--calib-per-class", "5", "--eval-per-class", "3", "--batch-size", "8", "--device", "cpu"]


def grid_of(folder: Path, encoder: str, **changes) -> dict:
    """The one-unit grid that `pait prune` on ``folder`` with ``COMMON`` flags runs."""
    suite = {"name": "imagefolder", "options": {"root": str(folder), "tasks": {folder.name: ["class0", "class1", "class2"]}},
             "protocol": "heldout", "calib_per_class": 5, "eval_per_class": 3}
    return {"name": "one", "encoders": [encoder], "suite": suite, "score_batch_size": 8, "eval_batch_size": 8,
            "precision": "fp32", "device": "cpu", "save_weights": True, **changes}


def run_grid(tmp_path: Path, config: dict) -> tuple[pd.DataFrame, Path]:
    """Results and the unit's stage folder of a `pait run` of ``config``."""
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", str(path), "--out", str(tmp_path / "runs"), "--quiet", "--no-report"]) == 0
    run = tmp_path / "runs" / "one"
    (entry,) = json.loads((run / "units.json").read_text())
    return pd.read_parquet(run / "results.parquet"), run / entry["unit_dir"]


def source_accuracy(results: pd.DataFrame, stage: str) -> float:
    (acc,) = results[(results.stage == stage) & results.is_source].accuracy
    return float(acc)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {16: write_colour_folder(tmp_path_factory.mktemp("images16"), 16),
            32: write_colour_folder(tmp_path_factory.mktemp("images32"), 32)}


@pytest.mark.parametrize("flags,changes", [
    (["--score", "kfac", "--sparsity", "0.5", "--recovery", "obs"],
     {"scores": ["kfac"], "sparsities": [0.5], "recoveries": ["obs"]}),
    (["--score", "magnitude", "--nm", "2:4", "--recovery", "sequential-adaptive"],
     {"scores": ["magnitude"], "sparsities": [0.5], "recoveries": ["sequential-adaptive"], "mask_options": {"nm": "2:4"}}),
    (["--score", "snip", "--sparsity", "0.7", "--recovery", "sgd", "--retrain-epochs", "2", "--lr", "0.05"],
     {"scores": ["snip"], "sparsities": [0.7], "recoveries": ["sgd"],
      "finetune": {"epochs": 2, "lr": 0.05, "milestones": [1], "batch_size": 8}}),
])
def test_prune_and_a_one_unit_run_agree_on_weights(folders, tmp_path, flags, changes):
    out = tmp_path / "pruned"
    assert main(["prune", "--encoder", test_prune.ENCODER, "--data", str(folders[16]), *COMMON, *flags,
                 "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads((out / "report.json").read_text())
    results, unit = run_grid(tmp_path, grid_of(folders[16], test_prune.ENCODER, **changes))
    assert report["accuracy"]["before"] == source_accuracy(results, "unpruned")
    assert report["accuracy"]["after"] == source_accuracy(results, "recovered")
    grid_mask = safetensors.torch.load_file(str(unit / "mask.safetensors"))
    mask = load_mask(out)
    assert mask.keys() == grid_mask.keys()
    assert all((mask[k] == grid_mask[k].bool()).all() for k in mask)
    weights = safetensors.torch.load_file(str(out / "pruned.safetensors"))
    assert all((v == w).all() for v, w in zip(weights.values(),
                                              safetensors.torch.load_file(str(unit / "recovered.safetensors")).values()))


def test_prune_and_a_one_unit_run_agree_on_channels(folders, tmp_path):
    out = tmp_path / "pruned"
    assert main(["prune", "--encoder", test_structured_prune.ENCODER, "--data", str(folders[32]), *COMMON,
                 "--structure", "channels", "--ratio", "0.5", "--score", "kfac", "--retrain-epochs", "1",
                 "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    report = json.loads((out / "report.json").read_text())
    # the defaults of channel pruning: the closed-form sequential refit, widths rounded to multiples of 8
    assert (report["options"]["recovery"], report["options"]["round_to"]) == ("sequential", 8)
    config = grid_of(folders[32], test_structured_prune.ENCODER, structure="channels", scores=["kfac"],
                     ratios=[0.5], recoveries=["sequential"], round_to=8,
                     finetune={"epochs": 1, "lr": 0.01, "milestones": [1], "batch_size": 8})
    results, unit = run_grid(tmp_path, config)
    assert report["accuracy"]["before"] == source_accuracy(results, "unpruned")
    assert report["accuracy"]["after"] == source_accuracy(results, "recovered")
    assert (json.loads((out / "structure.json").read_text())["modules"]
            == json.loads((unit / "structure.json").read_text())["modules"])
    mine, theirs = (safetensors.torch.load_file(str(d / "pruned.safetensors")) for d in (out, unit))
    assert mine.keys() == theirs.keys() and all((mine[k] == theirs[k]).all() for k in mine)


def logged(cache: Path) -> list[tuple[str, str]]:
    (log,) = cache.glob("prune-*/stages.log")
    return [(e["stage"], e["key"]) for e in map(json.loads, log.read_text().splitlines())]


def test_a_prune_killed_after_scoring_reruns_without_recomputing_what_it_finished(folders, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    child = [sys.executable, str(HERE / "prune_child.py"), str(folders[16]), str(out), "0.5", "--cache", str(cache)]
    killed = subprocess.run([*child, "--kill-after-scores"], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    # the default probes' data stage comes first: their heads are fit on the unpruned encoder before the unit runs
    assert [stage for stage, _ in logged(cache)] == ["data", "data", "heads", "scores"] and not out.exists()
    done = subprocess.run(child, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    stages = logged(cache)
    assert [stage for stage, _ in stages] == ["data", "data", "heads", "scores", "unit"]
    assert max(Counter(stages).values()) == 1
    assert json.loads((out / "report.json").read_text())["sparsity"] == pytest.approx(0.5, abs=0.01)
    again = subprocess.run(child, env=env, capture_output=True)  # all cached: computes nothing, same output
    assert again.returncode == 0 and logged(cache) == stages


def test_every_option_has_exactly_one_flag_in_its_help_group():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    actions = [a for a in parser._actions if a.dest != "help"]
    fields = {f.name: f for f in dataclasses.fields(PruneOptions)}
    assert sorted(a.dest for a in actions) == sorted(fields)
    for action in actions:
        assert action.option_strings == [flag(action.dest)]
    titles = {g.title: g for g in parser._action_groups}
    assert set(GROUPS.values()) <= set(titles)
    for name, f in fields.items():
        group = titles[GROUPS[f.metadata["flag"].group]]
        assert [a.dest for a in group._group_actions].count(name) == 1


def test_every_flag_defaults_to_its_field():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    from pait.commands.prune import options_from_args

    options = options_from_args(parser.parse_args(["--encoder", "e", "--data", "d", "--out", "o"]))
    assert options == PruneOptions("e", data="d", out="o").resolved()
    assert (options.sparsity, options.recovery) == (0.6, "obs")
    structured = options_from_args(parser.parse_args(["--encoder", "e", "--data", "d", "--out", "o", "--structure",
                                                      "channels", "--ratio", "0.3"]))
    # with --structure: no sparsity, the sequential refit and multiples of 8 channels; no latency flag
    assert (structured.sparsity, structured.recovery, structured.round_to) == (None, "sequential", 8)
    assert (structured.latency_runtime, structured.latency_threads, structured.latency_batch) == (None, None, None)
    assert options.round_to == 1  # weight masks are not rounded
    targeted = options_from_args(parser.parse_args(["--encoder", "e", "--data", "d", "--out", "o", "--structure",
                                                    "channels", "--target-speedup", "1.5"]))
    assert (targeted.ratio, targeted.target_speedup, targeted.recovery, targeted.round_to) == (None, 1.5, "sequential", 8)
    assert (targeted.latency_runtime, targeted.latency_threads, targeted.latency_batch) == ("onnxruntime", 2, 1)
    opted_out = options_from_args(parser.parse_args(["--encoder", "e", "--data", "d", "--out", "o", "--structure",
                                                     "channels", "--ratio", "0.3", "--round-to", "1"]))
    assert opted_out.round_to == 1
