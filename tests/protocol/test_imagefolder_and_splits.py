"""The imagefolder suite's two groupings, and the paper / heldout splits."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from fake_imagenet import write_jpeg

from pait.errors import DataError
from pait.tasks import load_suite, split_indices


@pytest.fixture
def folders(tmp_path):
    for c in "abcdefg":
        for k in range(2):
            write_jpeg(tmp_path / "img" / c / f"{k}.png", k)
    return tmp_path / "img"


def test_classes_per_task_groups_sorted_folders_and_leaves_out_the_remainder(folders):
    tasks = load_suite("imagefolder", root=str(folders), classes_per_task=3)
    assert [(t.name, t.class_names) for t in tasks] == [("task01", ("a", "b", "c")), ("task02", ("d", "e", "f"))]
    assert tasks[1].labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert [s.path.parent.name for s in tasks[1].sources] == ["d", "d", "e", "e", "f", "f"]


def test_a_yaml_task_list_names_the_tasks(folders, tmp_path):
    (tmp_path / "tasks.yaml").write_text(yaml.safe_dump({"first": ["g", "a"], "second": ["b", "c"]}))
    tasks = load_suite("imagefolder", root=str(folders), tasks=str(tmp_path / "tasks.yaml"))
    assert [(t.name, t.class_names) for t in tasks] == [("first", ("g", "a")), ("second", ("b", "c"))]
    assert [s.path.parent.name for s in tasks[0].sources] == ["g", "g", "a", "a"]


def test_imagefolder_option_errors(folders):
    with pytest.raises(DataError, match="exactly one of"):
        load_suite("imagefolder", root=str(folders))
    with pytest.raises(DataError, match="non-empty list"):
        load_suite("imagefolder", root=str(folders), tasks={"t": []})


def test_paper_split_is_the_first_images_of_each_class_for_both():
    labels = np.repeat(np.arange(3), 5)
    calib, evaluation = split_indices(labels, "paper", 4, 99, seed=0)
    assert np.array_equal(calib, evaluation)
    assert calib.tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13]


def test_heldout_split_is_seeded_balanced_and_disjoint():
    labels = np.tile(np.arange(4), 20)
    calib, evaluation = split_indices(labels, "heldout", 10, 6, seed=3)
    assert np.bincount(labels[calib]).tolist() == [10] * 4 and np.bincount(labels[evaluation]).tolist() == [6] * 4
    assert not set(calib) & set(evaluation)
    again = split_indices(labels, "heldout", 10, 6, seed=3)
    assert np.array_equal(again[0], calib) and np.array_equal(again[1], evaluation)
    assert not np.array_equal(split_indices(labels, "heldout", 10, 6, seed=4)[0], calib)
    with pytest.raises(DataError, match="class a has 20 images; the heldout protocol needs 21"):
        split_indices(labels, "heldout", 15, 6, seed=0, class_names=["a", "b", "c", "d"])
