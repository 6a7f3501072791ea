"""Stage keys cover what the input files hold: overwritten weights or images recompute the stages that
read them (counted in stages.log), even with size and mtime kept; an unchanged rerun, touched files or a
copy of them at the same path recompute nothing."""

from __future__ import annotations

import csv
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fake_imagenet import WNIDS
from gridutil import logged_stages
from PIL import Image
from safetensors.torch import save_file
from tiny_plugin import tiny_cnn

from pait.config import config_from_dict
from pait.executors import run_grid
from pait.fingerprints import ContentDigests
from pait.tasks import load_suite
from pait.tasks.fingerprint import tasks_fingerprint

TASKS = {"a": ["c0", "c1"], "b": ["c2", "c3"]}
ALL_STAGES = {"data": 1, "heads": 1, "scores": 1, "unit": 2}


def write_ppm(path: Path, seed: int) -> None:
    """An 8x8 binary PPM: every such file has the same size, so only content and mtime can change."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_weights(path: Path, seed: int) -> None:
    """tiny_cnn's state dict with its conv weights drawn from ``seed`` (same shapes, so the same file size)."""
    state = tiny_cnn().model.state_dict()
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) if k.endswith("weight") and v.dim() == 4 else v
             for k, v in state.items()}
    save_file(state, str(path))


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    """(image folder root with 4 classes of 6 images, weights file)."""
    root = tmp_path / "images"
    for c in range(4):
        for k in range(6):
            write_ppm(root / f"c{c}" / f"{k}.ppm", 10 * c + k)
    weights = tmp_path / "tiny.safetensors"
    write_weights(weights, 0)
    return root, weights


def run(inputs: tuple[Path, Path], out: Path) -> tuple[pd.DataFrame, Counter]:
    """Run the grid; the table and the stages it computed (from stages.log)."""
    root, weights = inputs
    config = config_from_dict({
        "name": "content", "encoders": [{"name": "tiny_cnn_file", "weights": str(weights)}],
        "suite": {"name": "imagefolder", "options": {"root": str(root), "tasks": TASKS},
                  "protocol": "heldout", "calib_per_class": 3, "eval_per_class": 3},
        "scores": ["magnitude"], "sparsities": [0.3, 0.6], "sources": ["a"],
        "finetune": {"epochs": 1, "lr": 0.05, "milestones": [1], "batch_size": 4}, "device": "cpu",
    })
    before = len(logged_stages(out / "content"))
    table = run_grid(config, out, show_progress=False)
    return table, Counter(stage for stage, _ in logged_stages(out / "content")[before:])


def test_an_unchanged_rerun_recomputes_nothing(inputs, tmp_path):
    first, computed = run(inputs, tmp_path / "out")
    assert computed == ALL_STAGES
    again, computed = run(inputs, tmp_path / "out")
    assert computed == Counter()
    pd.testing.assert_frame_equal(again, first, check_exact=True)


def test_weights_overwritten_in_place_recompute_heads_scores_and_units(inputs, tmp_path):
    _, weights = inputs
    first, _ = run(inputs, tmp_path / "out")
    size = weights.stat().st_size
    write_weights(weights, 1)
    assert weights.stat().st_size == size
    changed, computed = run(inputs, tmp_path / "out")
    assert computed == {"heads": 1, "scores": 1, "unit": 2}  # the decoded images are reused
    assert not np.allclose(changed.loss, first.loss)
    fresh, _ = run(inputs, tmp_path / "fresh")  # the same as a run in an empty store
    pd.testing.assert_frame_equal(changed, fresh, check_exact=True)

    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # touched, same content
    _, computed = run(inputs, tmp_path / "out")
    assert computed == Counter()


def test_an_image_overwritten_in_place_recomputes_every_stage(inputs, tmp_path):
    root, _ = inputs
    first, _ = run(inputs, tmp_path / "out")
    image = root / "c0" / "0.ppm"
    size = image.stat().st_size
    write_ppm(image, 999)
    assert image.stat().st_size == size
    changed, computed = run(inputs, tmp_path / "out")
    assert computed == ALL_STAGES
    assert not np.allclose(changed.loss, first.loss)
    fresh, _ = run(inputs, tmp_path / "fresh")
    pd.testing.assert_frame_equal(changed, fresh, check_exact=True)


def test_an_image_rewritten_with_its_size_and_mtime_kept_recomputes_every_stage(inputs, tmp_path):
    root, _ = inputs
    first, _ = run(inputs, tmp_path / "out")
    image = root / "c1" / "2.ppm"
    stat = image.stat()
    write_ppm(image, 777)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as `cp -p` or `touch -d` would leave it
    assert (image.stat().st_size, image.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    changed, computed = run(inputs, tmp_path / "out")
    assert computed == ALL_STAGES
    assert not np.allclose(changed.loss, first.loss)
    fresh, _ = run(inputs, tmp_path / "fresh")
    pd.testing.assert_frame_equal(changed, fresh, check_exact=True)


def test_touched_or_copied_images_recompute_nothing(inputs, tmp_path):
    root, weights = inputs
    first, _ = run(inputs, tmp_path / "out")
    for image in root.rglob("*.ppm"):
        stat = image.stat()
        os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 3_000_000_000))
    again, computed = run(inputs, tmp_path / "out")
    assert computed == Counter()
    shutil.move(root, tmp_path / "moved")  # the same files elsewhere: the same content, the same keys
    shutil.copytree(tmp_path / "moved", root)
    again, computed = run(inputs, tmp_path / "out")
    assert computed == Counter()
    pd.testing.assert_frame_equal(again, first, check_exact=True)


def test_an_added_image_recomputes_every_stage(inputs, tmp_path):
    root, _ = inputs
    run(inputs, tmp_path / "out")
    write_ppm(root / "c3" / "extra.ppm", 123)
    _, computed = run(inputs, tmp_path / "out")
    assert computed == ALL_STAGES


def test_the_imagenet10_fingerprint_covers_its_label_file(flat_val, tmp_path):
    root, truth = flat_val
    solution = tmp_path / "LOC_val_solution.csv"

    def write_solution(truth: dict[str, str]) -> None:
        with open(solution, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["ImageId", "PredictionString"])
            writer.writerows([image_id, f"{wnid} 1 2 3 4"] for image_id, wnid in truth.items())

    (tmp_path / "LOC_synset_mapping.txt").write_text("".join(f"{w} x\n" for w in WNIDS))
    write_solution(truth)
    digests = ContentDigests(tmp_path / "memo.json")
    tasks = load_suite("imagenet10", root=root)
    assert all(solution in task.inputs for task in tasks)
    before = tasks_fingerprint(tasks, digests)
    assert tasks_fingerprint(load_suite("imagenet10", root=root), digests) == before
    stat = solution.stat()
    data = solution.read_bytes()
    solution.write_bytes(data.replace(b" 1 2 3 4", b" 5 6 7 8"))  # other boxes: the same labels, size and mtime
    os.utime(solution, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert solution.stat().st_size == stat.st_size and solution.read_bytes() != data
    assert tasks_fingerprint(load_suite("imagenet10", root=root), digests) != before


def test_the_embedded_suite_names_its_packaged_data_files():
    try:
        tasks = load_suite("embedded")
    except RuntimeError:
        pytest.skip("neither MNIST nor Fashion-MNIST is installed")
    assert all(task.inputs and all(Path(p).is_file() for p in task.inputs) for task in tasks)
