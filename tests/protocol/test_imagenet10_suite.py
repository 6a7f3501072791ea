"""The imagenet10 suite from fake ImageNet validation trees in both layouts."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from fake_imagenet import WNIDS, devkit_order, imagenet10_indices

from pait.errors import DataError
from pait.tasks import load_suite
from pait.tasks.imagenet10 import imagenet10_suite

THEMES = ["food", "geological-formations", "birds", "structures", "clothing", "furniture", "equipment",
          "vehicles", "land-animals", "aquatic-animals"]


def wnid_of(path: Path, truth: dict[str, str] | None) -> str:
    return truth[path.stem] if truth is not None else path.parent.name


def check_suite(tasks, truth: dict[str, str] | None = None) -> None:
    """10 tasks named by theme; class i of task t is the wnid of ImageNet-10 index t[i], 2 images each."""
    assert [t.name for t in tasks] == THEMES
    for task, indices in zip(tasks, imagenet10_indices()):
        assert task.num_classes == 10 and len(task.labels) == 20
        assert np.array_equal(np.bincount(task.labels), np.full(10, 2))
        for source, label in zip(task.sources, task.labels):
            assert wnid_of(source.path, truth) == WNIDS[indices[label]]
    assert tasks[0].class_names[0] == "cheeseburger"
    assert tasks[9].class_names[:2] == ("tench", "goldfish")
    domains = {t.name: t.domain for t in tasks}  # near and far transfer: every task has a domain
    assert all(domains.values()) and domains["birds"] == domains["aquatic-animals"] != domains["vehicles"]


def test_class_folders_sorted_names_give_the_class_order(class_folder_val):
    check_suite(load_suite("imagenet10", root=str(class_folder_val)))


def test_class_folders_with_a_synset_mapping_need_only_the_used_folders(class_folder_val, tmp_path):
    mapping = tmp_path / "devkit" / "LOC_synset_mapping.txt"  # not beside root: named by the option
    mapping.parent.mkdir()
    mapping.write_text("".join(f"{w} class {i}, name\n" for i, w in enumerate(WNIDS)))
    empty = [p for p in sorted(class_folder_val.iterdir()) if not any(p.iterdir())]
    for p in empty[:100]:
        p.rmdir()
    with pytest.raises(DataError, match="900 class folders"):
        imagenet10_suite(root=class_folder_val)
    check_suite(imagenet10_suite(root=class_folder_val, synset_mapping=mapping))


def test_flat_with_loc_val_solution(flat_val, tmp_path):
    root, truth = flat_val
    with open(tmp_path / "LOC_val_solution.csv", "w", newline="") as f:  # found beside root
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        for image_id, wnid in truth.items():
            writer.writerow([image_id, f"{wnid} 1 2 3 4 {wnid} 5 6 7 8"])
    (tmp_path / "LOC_synset_mapping.txt").write_text("".join(f"{w} x\n" for w in WNIDS))
    check_suite(imagenet10_suite(root=root), truth)


def write_ground_truth(root: Path, truth: dict[str, str]) -> Path:
    ids = {w: i + 1 for i, w in enumerate(devkit_order())}
    path = root.parent / "ILSVRC2012_validation_ground_truth.txt"
    path.write_text("".join(f"{ids[truth[k]]}\n" for k in sorted(truth)))
    return path


def test_flat_with_ground_truth_and_devkit_text_list(flat_val, tmp_path):
    root, truth = flat_val
    write_ground_truth(root, truth)
    with pytest.raises(DataError, match="devkit_synsets"):
        imagenet10_suite(root=root)
    listing = tmp_path / "devkit_synsets.txt"
    listing.write_text("\n".join(devkit_order()))
    check_suite(imagenet10_suite(root=root, devkit_synsets=listing), truth)


def test_flat_with_ground_truth_and_meta_mat(flat_val, tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    root, truth = flat_val
    write_ground_truth(root, truth)
    extra = [(1001 + i, f"n9{i:07d}", 3) for i in range(5)]  # non-leaf synsets follow the 1000 classes
    records = [(i + 1, w, 0) for i, w in enumerate(devkit_order())] + extra
    synsets = np.array(records, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    scipy_io.savemat(tmp_path / "meta.mat", {"synsets": synsets})
    check_suite(imagenet10_suite(root=root, devkit_synsets=tmp_path / "meta.mat"), truth)


def test_missing_class_images_are_named(class_folder_val):
    for p in (class_folder_val / WNIDS[933]).iterdir():
        p.unlink()
    with pytest.raises(DataError, match=f"food.*{WNIDS[933]} holds no image"):
        imagenet10_suite(root=class_folder_val)


def test_missing_root_and_unknown_option_are_clear(tmp_path):
    with pytest.raises(DataError, match="needs the option root"):
        load_suite("imagenet10")
    with pytest.raises(DataError, match="neither wnid class folders"):
        load_suite("imagenet10", root=str(tmp_path))
    with pytest.raises(ValueError, match="unknown option.*rot"):
        load_suite("imagenet10", rot="x")
