"""Fixtures: fake ImageNet validation trees (both layouts) and small image folders of tiny JPEGs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import tiny_plugin  # noqa: F401  (registers tiny_cnn and the tiny suite)
from fake_imagenet import DISTRACTORS, WNIDS, used_classes, write_jpeg  # noqa: F401


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
