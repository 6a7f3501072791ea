"""Fingerprint of a suite's tasks for the data stage's key: which files were read, and what they hold."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pait.fingerprints import ContentDigests, common_base, listing_digest
from pait.tasks.base import Task
from pait.tasks.decode import FileImage


def tasks_fingerprint(tasks: list[Task], digests: ContentDigests | None = None) -> str:
    """sha256 over every task's name, classes, labels and image files (in order), its ``recipe`` and
    ``styles`` where it has them, and over the (relative path, content sha256) of every file read: the
    images and each task's ``inputs``. The content hashes come from ``digests``' memo (none: every file
    is hashed) while a file's size, mtime and ctime are unchanged, so an image rewritten in place (same
    size, mtime restored) is noticed, and a touched one is not.

    Images a plugin holds in memory (sources that are not files) are covered by its code and its
    ``recipe``, not here.
    """
    images = [[Path(s.path).resolve() for s in task.sources if isinstance(s, FileImage)] for task in tasks]
    files = [p for task_images in images for p in task_images] + [Path(p).resolve() for t in tasks for p in t.inputs]
    base = common_base(files)
    structure = [
        {"name": task.name, "classes": list(task.class_names), "labels": _digest(task.labels),
         "images": [p.relative_to(base).as_posix() for p in task_images], **_made(task)}
        for task, task_images in zip(tasks, images)
    ]
    payload = json.dumps({"tasks": structure, "files": listing_digest(files, digests)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(values, dtype=np.int64).tobytes()).hexdigest()


def _made(task: Task) -> dict[str, object]:
    """How a task's in-memory images are made, for tasks that say so (other keys stay as they were)."""
    made: dict[str, object] = {}
    if task.recipe:
        made["recipe"] = task.recipe
    if task.styles is not None:
        made["styles"] = _digest(task.styles)
        made["style_names"] = list(task.style_names)
        made["style_designs"] = list(task.designs)
    return made
