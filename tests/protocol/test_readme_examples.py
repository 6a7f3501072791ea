"""README's own config and command-line examples that are cheap to run, read from README.md itself (so a
change there is tested here) and run on the tiny encoder and suites."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from gridutil import tiny_config, write_config
import pytest
from PIL import Image
from safetensors.torch import load_file

from pait.cli import build_parser, main
from pait.config import load_config
from pait.configs import config_path
from pait.grid.validation import validate_config

README = Path(__file__).parents[2] / "README.md"


def example(pattern: str) -> str:
    """The first code span of README.md matching ``pattern`` (its first group, if any)."""
    found = re.search(pattern, README.read_text())
    assert found, f"README.md has no example matching {pattern}"
    return found.group(1)


def colour_folder(root: Path, classes: int = 2, per_class: int = 6, size: int = 8) -> Path:
    """``root/c<k>/<i>.png``: one noisy colour per class."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        colour = rng.integers(0, 256, 3)
        for i in range(per_class):
            pixels = np.clip(colour + rng.normal(0, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"c{c}" / f"{i}.png")
    return root


def test_the_score_option_example_prunes_with_that_damping(tmp_path):
    item = example(r"`--score-option (damping=[^`\s]+)`")
    out = tmp_path / "pruned"
    argv = ["prune", "--encoder", "tiny_cnn", "--data", str(colour_folder(tmp_path / "images")), "--score", "kfac",
            "--score-option", item, "--sparsity", "0.5", "--recovery", "none", "--calib-per-class", "4",
            "--eval-per-class", "2", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    options = json.loads((out / "report.json").read_text())["options"]
    assert item == "damping=1e-2" and options["score_options"] == {"damping": 0.01}


def test_the_score_options_example_runs_a_grid(tmp_path):
    snippet = example(r"`(score_options: \{kfac: [^`]+)`")
    config = tiny_config(scores=["kfac", "random"], sparsities=[0.5], sources=["t0"], recoveries=["none"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config) + snippet + "\n")
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet", "--no-report"]) == 0
    run = tmp_path / "out" / "tiny"
    written = json.loads((run / "config.json").read_text())["score_options"]
    assert written["kfac"] == {"damping": 0.01} and isinstance(written["kfac"]["damping"], float)
    assert written["random"] == {"seed": 3}
    rows = pd.read_parquet(run / "results.parquet")
    assert set(rows["score"]) == {"kfac", "random"}


def test_the_skip_bad_images_override_skips_an_unreadable_image(tmp_path, capsys):
    override = example(r"`(suite\.options\.skip_bad_images=true)`")
    root = colour_folder(tmp_path / "images", classes=2, per_class=3)
    (root / "c1" / "0.png").write_bytes(b"not an image")
    suite = {"name": "imagefolder", "options": {"root": str(root), "tasks": {"a": ["c0", "c1"]}},
             "protocol": "paper", "calib_per_class": 3}
    config = write_config(tmp_path / "f.yaml", tiny_config(suite=suite, scores=["magnitude"], sparsities=[0.5],
                                                           recoveries=["none"]))
    argv = ["run", str(config), "--out", str(tmp_path / "out"), "--quiet", "--no-report"]
    assert main(argv) == 2 and "cannot read image" in capsys.readouterr().err  # without the override
    assert main([*argv, override]) == 0
    assert len(pd.read_parquet(tmp_path / "out" / "tiny" / "results.parquet")) > 0


def test_the_probe_example_reports_each_probe_and_the_int8_model(tmp_path):
    command = example(r"pait (prune --encoder [^\n]+\\\n[^\n]+--probe [^\n]+)")
    words = shlex.split(command.replace("\\\n", " "))
    assert words.count("--probe") == 2 and "--int8" in words
    folders = {"my_images/": colour_folder(tmp_path / "images"), "other_task/": colour_folder(tmp_path / "other", 3, 6, 10),
               "third_task/": colour_folder(tmp_path / "third", 2, 6, 12), "pruned/": tmp_path / "pruned",
               "efficientnet_lite0": "tiny_cnn"}
    argv = [str(folders.get(w, w)) for w in words]
    assert main([*argv, "--calib-per-class", "4", "--eval-per-class", "2", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "pruned" / "report.json").read_text())
    assert [p["name"] for p in report["probes"]] == ["other", "third"]
    assert report["int8"]["file"] == "pruned.int8.onnx" and (tmp_path / "pruned" / "pruned.int8.onnx").is_file()
    table = example(r"(\| probe \| classes \| calibration \| evaluation \| before \| after \| retention \|)")
    assert table in (tmp_path / "pruned" / "report.md").read_text()


def test_the_nm_example_prunes_two_of_every_four(tmp_path):
    command = example(r"pait (prune --encoder [^\n]+\\\n[^\n]+--nm 2:4)")
    words = shlex.split(command.replace("\\\n", " ").split("#")[0])
    nm = example(r"# or (--nm \d+:\d+)").split()
    assert nm == ["--nm", "2:4"]
    options = dict(zip(words[1::2], words[2::2]))
    assert options.keys() == {"--encoder", "--data", "--score", "--sparsity", "--recovery", "--out"}
    options.pop("--sparsity")  # --nm stands for it
    options |= {"--encoder": "tiny_cnn", "--data": str(colour_folder(tmp_path / "images")), "--out": str(tmp_path / "p")}
    argv = ["prune", *[w for item in options.items() for w in item], *nm, "--calib-per-class", "4",
            "--eval-per-class", "2", "--device", "cpu"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    assert report["options"]["nm"] == "2:4" and report["options"]["score"] == options["--score"]
    masks = load_file(str(tmp_path / "p" / "mask.safetensors"))
    pruned = [name for name in masks if name not in report["nm_dense_layers"]]
    assert pruned
    for name in pruned:
        rows = masks[name].reshape(masks[name].shape[0], -1)
        assert (rows.reshape(rows.shape[0], -1, 4).sum(-1) == 2).all(), name


def _setting(config, dotted: str):
    """The value at ``encoders.0.weights``-style path in a loaded config."""
    value = config
    for part in dotted.split("."):
        value = value[int(part)] if part.isdigit() else value[part] if isinstance(value, dict) else getattr(value, part)
    return value


@pytest.mark.parametrize("pattern", [
    r"pait (run demo finetune\.epochs=2) ",
    r"pait (run paper/\S+ encoders\.0\.weights=\S+ suite\.options\.root=\S+)\n",
    r"pait (run study/\S+ suite\.name=emoji10 suite\.protocol=style-disjoint)\n",
])
def test_the_run_examples_load_and_validate_with_their_overrides(pattern):
    """Parsed as ``pait run`` parses them, loaded and checked as before the grid starts (nothing is computed)."""
    args, extra = build_parser().parse_known_args(shlex.split(example(pattern)))
    assert args.command == "run" and extra == []
    config = load_config(config_path(args.config), args.overrides)
    validate_config(config)
    assert args.overrides
    for item in args.overrides:
        key, value = item.split("=", 1)
        assert str(_setting(config, key)) == value, item
