"""The ``imagenet10`` suite: the study's 10 tasks x 10 classes, from the user's ImageNet-1k validation images.

Option ``root``: the folder of the validation images, in one of two layouts (nothing is downloaded):

* class folders, ``root/n01440764/*.JPEG``: the sorted names of exactly 1000 class folders give the
  standard class order 0..999; with fewer folders, name ``LOC_synset_mapping.txt`` (option
  ``synset_mapping``, or found in ``root`` or its parent).
* flat, ``root/ILSVRC2012_val_00000001.JPEG`` ..., labelled by either
  - ``LOC_val_solution.csv`` (``ImageId,PredictionString``, the wnid first; option ``solution`` or
    found in ``root`` or its parent); the class order is ``LOC_synset_mapping.txt`` when present,
    else the CSV's 1000 wnids sorted; or
  - ``ILSVRC2012_validation_ground_truth.txt`` (option ``ground_truth`` or found in ``root`` or its
    parent) *with* option ``devkit_synsets``: the devkit's ``meta.mat`` (read with scipy) or a text
    file of the 1000 wnids in ILSVRC2012_ID order (line i = ID i). The ground truth's 1-based IDs follow
    the devkit's order, not the sorted one, so ``LOC_synset_mapping.txt`` cannot decode them.

The tasks' class indices (standard sorted-synset order) come from ``pait/data/imagenet10.json``.
Each class keeps all its images in file-name order (50 in ImageNet's validation set).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from pait.errors import DataError
from pait.tasks.base import Task, suite_root
from pait.tasks.decode import FileImage, is_image_file
from pait.tasks.imagefolder import class_folder_task

NUM_CLASSES = 1000
WNID = re.compile(r"^n\d{8}$")
FLAT_IMAGE = re.compile(r"^ILSVRC2012_val_(\d{8})\.JPEG$", re.IGNORECASE)
SYNSET_MAPPING = "LOC_synset_mapping.txt"
SOLUTION = "LOC_val_solution.csv"
GROUND_TRUTH = "ILSVRC2012_validation_ground_truth.txt"


DEFINITION = "data/imagenet10.json"
# each task's domain (near and far transfer), grouped as emoji10 groups its tasks. Kept here, not in the
# definition file: that file is an input of every stage key, and a domain changes no stage's output.
DOMAINS = {"food": "food", "geological-formations": "landscapes", "birds": "animals", "structures": "structures",
           "clothing": "clothing", "furniture": "objects", "equipment": "objects", "vehicles": "vehicles",
           "land-animals": "animals", "aquatic-animals": "animals"}


def imagenet10_definition() -> list[tuple[str, list[tuple[int, str]]]]:
    """(task name, [(ImageNet class index, class name), ...]) for the 10 tasks, from the package data."""
    data = json.loads(resources.files("pait").joinpath(DEFINITION).read_text())
    tasks = []
    for entry in data["tasks"]:
        name = entry["theme"].replace(" ", "-")
        classes = [(int(c["index"]), str(c["name"])) for c in entry["classes"]]
        bad = [i for i, _ in classes if not 0 <= i < NUM_CLASSES]
        if bad:
            raise DataError(f"imagenet10 task {name!r}: unknown ImageNet class index(es) {bad}")
        tasks.append((name, classes))
    return tasks


def _find(option: str | Path | None, root: Path, filename: str) -> Path | None:
    if option is not None:
        path = Path(option).expanduser()
        if not path.is_file():
            raise DataError(f"imagenet10: {path} does not exist")
        return path
    return next((p for p in (root / filename, root.parent / filename) if p.is_file()), None)


def _check_wnids(wnids: list[str], source: object) -> list[str]:
    if len(wnids) != NUM_CLASSES or len(set(wnids)) != NUM_CLASSES or not all(WNID.match(w) for w in wnids):
        raise DataError(f"{source}: expected {NUM_CLASSES} distinct wnids (n########), found {len(set(wnids))}")
    return wnids


def read_synset_mapping(path: Path) -> list[str]:
    """The 1000 wnids of ``LOC_synset_mapping.txt`` (``n01440764 tench, Tinca tinca`` lines), sorted."""
    wnids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    return sorted(_check_wnids(wnids, path))


def read_devkit_synsets(path: Path) -> list[str]:
    """The 1000 wnids in ILSVRC2012_ID order, from the devkit's ``meta.mat`` or a text list (line i = ID i)."""
    if path.suffix.lower() != ".mat":
        return _check_wnids([line.split()[0] for line in path.read_text().splitlines() if line.strip()], path)
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DataError(f"reading {path} needs scipy; or give devkit_synsets as a text list of wnids") from None
    synsets = loadmat(str(path), squeeze_me=True)["synsets"]
    by_id = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["ILSVRC2012_ID"]) <= NUM_CLASSES}
    return _check_wnids([by_id.get(i, "") for i in range(1, NUM_CLASSES + 1)], path)


def _folder_wnids(root: Path, folders: list[str], synset_mapping: str | Path | None) -> list[str]:
    mapping = _find(synset_mapping, root, SYNSET_MAPPING)
    if mapping is not None:
        return read_synset_mapping(mapping)
    if len(folders) != NUM_CLASSES:
        raise DataError(f"imagenet10: {root} has {len(folders)} class folders; the class order needs all "
                        f"{NUM_CLASSES}, or give synset_mapping=/path/to/{SYNSET_MAPPING}")
    return folders


def _flat_labels(
    root: Path, files: dict[int, Path], synset_mapping, solution, ground_truth, devkit_synsets
) -> tuple[dict[Path, str], list[str]]:
    solution_path = _find(solution, root, SOLUTION)
    if solution_path is not None:
        labels = {}
        with open(solution_path, newline="") as f:
            for row in csv.DictReader(f):
                labels[row["ImageId"]] = row["PredictionString"].split()[0]
        mapping = _find(synset_mapping, root, SYNSET_MAPPING)
        wnids = read_synset_mapping(mapping) if mapping else sorted(_check_wnids(sorted(set(labels.values())), solution_path))
        return {p: labels[p.stem] for p in files.values() if p.stem in labels}, wnids
    truth_path = _find(ground_truth, root, GROUND_TRUTH)
    if truth_path is None:
        raise DataError(f"imagenet10: {root} holds flat ILSVRC2012_val_*.JPEG files but no labels: give "
                        f"solution=/path/to/{SOLUTION}, or ground_truth=/path/to/{GROUND_TRUTH} with devkit_synsets")
    if devkit_synsets is None:
        raise DataError(f"imagenet10: {truth_path} holds devkit class IDs; give devkit_synsets=/path/to/meta.mat "
                        "(or a text list of the 1000 wnids in ILSVRC2012_ID order)")
    by_id = read_devkit_synsets(Path(devkit_synsets).expanduser())
    ids = [int(line) for line in truth_path.read_text().split()]
    bad = sorted({i for i in ids if not 1 <= i <= NUM_CLASSES})
    if bad:
        raise DataError(f"{truth_path}: unknown class ID(s) {bad[:5]}; IDs run from 1 to {NUM_CLASSES}")
    labels = {files[n]: by_id[i - 1] for n, i in enumerate(ids, start=1) if n in files}
    return labels, sorted(by_id)


def imagenet10_suite(
    root: str | Path | None = None,
    synset_mapping: str | Path | None = None,
    solution: str | Path | None = None,
    ground_truth: str | Path | None = None,
    devkit_synsets: str | Path | None = None,
) -> list[Task]:
    """The 10 ImageNet-10 tasks from the validation images under ``root`` (see the module docstring)."""
    root = suite_root("imagenet10", root, "/path/to/imagenet/val")
    tasks = _imagenet10_tasks(root, synset_mapping, solution, ground_truth, devkit_synsets)
    inputs = label_files(root, synset_mapping, solution, ground_truth, devkit_synsets)
    return [replace(task, inputs=inputs, domain=DOMAINS.get(task.name, "")) for task in tasks]


def label_files(root: Path, synset_mapping, solution, ground_truth, devkit_synsets) -> tuple[Path, ...]:
    """Every file besides the images that the suite may have read (the task definition, label and class
    order files), for stage keys; one present but unused only makes the keys stricter."""
    found = [Path(str(resources.files("pait").joinpath(DEFINITION)))]
    for option, filename in ((synset_mapping, SYNSET_MAPPING), (solution, SOLUTION), (ground_truth, GROUND_TRUTH)):
        if option is not None:
            found.append(Path(option).expanduser())
        else:
            found.append(next((p for p in (root / filename, root.parent / filename) if p.is_file()), None))
    if devkit_synsets is not None:
        found.append(Path(devkit_synsets).expanduser())
    return tuple(p for p in found if p is not None and p.is_file())


def _imagenet10_tasks(root: Path, synset_mapping, solution, ground_truth, devkit_synsets) -> list[Task]:
    definition = imagenet10_definition()
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and WNID.match(p.name))
    if folders:
        wnids = _folder_wnids(root, folders, synset_mapping)
        return [class_folder_task(name, root, [wnids[i] for i, _ in classes], [n for _, n in classes])
                for name, classes in definition]
    files = {int(m.group(1)): p for p in root.iterdir() if (m := FLAT_IMAGE.match(p.name)) and is_image_file(p)}
    if not files:
        raise DataError(f"imagenet10: {root} holds neither wnid class folders (n01440764/...) nor ILSVRC2012_val_*.JPEG files")
    labels, wnids = _flat_labels(root, files, synset_mapping, solution, ground_truth, devkit_synsets)
    by_wnid: dict[str, list[Path]] = {}
    for path in sorted(labels):
        by_wnid.setdefault(labels[path], []).append(path)
    tasks = []
    for name, classes in definition:
        groups = []
        for index, class_name in classes:
            paths = by_wnid.get(wnids[index])
            if not paths:
                raise DataError(f"imagenet10 task {name!r}: no image of class {index} ({wnids[index]}, {class_name}) in {root}")
            groups.append(paths)
        tasks.append(flat_task(name, groups, [n for _, n in classes]))
    return tasks


def flat_task(name: str, groups: list[list[Path]], class_names: list[str]) -> Task:
    """A task whose class ``i`` is the image files ``groups[i]``."""
    sources = [FileImage(p) for group in groups for p in group]
    labels = np.concatenate([np.full(len(g), i, dtype=np.int64) for i, g in enumerate(groups)])
    return Task(name, tuple(class_names), sources, labels)
