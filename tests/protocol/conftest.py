"""Fixtures: fake ImageNet validation trees (both layouts) and small image folders of tiny JPEGs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image

import tiny_plugin  # noqa: F401  (registers tiny_cnn and the tiny suite)

WNIDS = [f"n{i:08d}" for i in range(1000)]
DISTRACTORS = (500, 501, 999)


def imagenet10_indices() -> list[list[int]]:
    data = json.loads((Path(__file__).parents[2] / "src/pait/data/imagenet10.json").read_text())
    return [[c["index"] for c in t["classes"]] for t in data["tasks"]]


def write_jpeg(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value % 256, (value * 7) % 256, (value * 13) % 256)).save(path, "JPEG")


def used_classes() -> list[int]:
    return sorted({i for task in imagenet10_indices() for i in task} | set(DISTRACTORS))


@pytest.fixture
def class_folder_val(tmp_path) -> Path:
    """``val/<wnid>/*.JPEG``: 1000 class folders, 2 images in each ImageNet-10 class and distractor."""
    root = tmp_path / "val"
    for wnid in WNIDS:
        (root / wnid).mkdir(parents=True)
    for i in used_classes():
        for k in range(2):
            write_jpeg(root / WNIDS[i] / f"ILSVRC2012_val_{i * 10 + k:08d}.JPEG", i)
    return root


@pytest.fixture
def flat_val(tmp_path) -> tuple[Path, dict[str, str]]:
    """Flat ``ILSVRC2012_val_*.JPEG`` files (2 per used class, shuffled numbering) and image id -> wnid."""
    root = tmp_path / "flat"
    classes = [i for i in used_classes() for _ in range(2)]
    random.Random(0).shuffle(classes)
    truth = {}
    for n, i in enumerate(classes, start=1):
        image_id = f"ILSVRC2012_val_{n:08d}"
        write_jpeg(root / f"{image_id}.JPEG", i)
        truth[image_id] = WNIDS[i]
    return root, truth


def devkit_order() -> list[str]:
    """A fake devkit (meta.mat) order of the wnids: not the sorted order."""
    order = list(WNIDS)
    random.Random(1).shuffle(order)
    return order
