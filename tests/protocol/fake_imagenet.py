"""Helpers that build fake ImageNet validation trees and tiny JPEGs (imported by tests and conftest)."""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image

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


def devkit_order() -> list[str]:
    """A fake devkit (meta.mat) order of the wnids: not the sorted order."""
    order = list(WNIDS)
    random.Random(1).shuffle(order)
    return order
