"""The emoji10 suite, built from tiny emoji files this test writes (no installed set is read): the class
definition, the seeded renderer, the style-disjoint split, missing sets, keys, and `pait run` on it."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pait.errors import DataError
from pait.tasks import load_suite, split_indices
from pait.tasks.base import Task, held_out_design
from pait.tasks.emoji import emoji10_definition
from pait.tasks.emoji_sets import STYLES
from pait.tasks.fingerprint import tasks_fingerprint

PROTOCOL_TESTS = Path(__file__).parent / "protocol"
PNG_STYLES = ("noto", "twemoji")
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="{x}" y="4" width="12" height="24" '
       'fill="rgb({r},{g},{b})"/><circle cx="16" cy="16" r="5" fill="#222"/></svg>')


def colour(task: int, c: int, style: int) -> tuple[int, int, int]:
    return (40 + 20 * c, 30 + 20 * task, 60 + 60 * style)


def write_sets(root: Path, styles: tuple[str, ...] = PNG_STYLES) -> Path:
    """Tiny stand-ins for the emoji sets under ``root/node_modules``: one small file per class and style."""
    modules = root / "node_modules"
    by_name = {s.name: s for s in STYLES}
    for s, name in enumerate(styles):
        style = by_name[name]
        for t, task in enumerate(emoji10_definition()):
            for c, cls in enumerate(task.classes):
                path = style.file(modules, cls.image, cls.fluent)
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.suffix == ".svg":
                    r, g, b = colour(t, c, s)
                    path.write_text(SVG.format(x=4 + c % 5 * 3, r=r, g=g, b=b))
                else:
                    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
                    image.paste(colour(t, c, s) + (255,), (1 + c % 3, 1, 7, 7))
                    image.save(path)
    return root


@pytest.fixture
def sets(tmp_path) -> Path:
    return write_sets(tmp_path / "sets")


def test_the_definition_has_ten_tasks_and_a_consistent_imagenet_map():
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    data = json.loads((Path(__file__).parents[1] / "src/pait/data/emoji10.json").read_text())
    tasks = emoji10_definition()
    assert len(tasks) == 10 and all(5 <= len(t.classes) <= 10 for t in tasks)
    assert len({t.name for t in tasks}) == 10 and len({t.domain for t in tasks}) >= 5
    indices = [c.imagenet for t in tasks for c in t.classes if c.imagenet is not None]
    assert len(indices) == len(set(indices)) and len(indices) >= 80  # no ImageNet class stands for two emoji
    for entry in data["tasks"]:
        for c in entry["classes"]:
            if c["imagenet"] is None:
                assert c["imagenet_name"] is None
            else:  # the recorded name is ImageNet-1k's own for that index
                assert info.index_to_description(c["imagenet"]).split(",")[0] == c["imagenet_name"], c
    imagenet10 = json.loads((Path(__file__).parents[1] / "src/pait/data/imagenet10.json").read_text())
    themes = {t["theme"].replace(" ", "-"): {c["index"] for c in t["classes"]} for t in imagenet10["tasks"]}
    shared = [t for t in tasks if t.name in themes]  # a shared theme's classes are mostly among ImageNet-10's own
    assert len(shared) >= 8
    assert sum(c.imagenet in themes[t.name] for t in shared for c in t.classes) >= 20
    animals = {t.domain for t in tasks if t.name in ("birds", "land-animals", "aquatic-animals")}
    assert animals == {"animals"}


def test_the_suite_builds_from_the_sets_present_and_renders_deterministically(sets, caplog):
    with caplog.at_level(logging.WARNING):
        tasks = load_suite("emoji10", root=str(sets), per_style=6, size=48)
    assert "fluent-color, fluent-flat not installed" in caplog.text
    assert [t.name for t in tasks] == [t.name for t in emoji10_definition()]
    task = tasks[0]
    assert task.style_names == PNG_STYLES and task.domain == "food"
    assert len(task.labels) == 10 * 2 * 6 and np.bincount(task.styles).tolist() == [60, 60]
    first = np.asarray(task.sources[0]())
    assert first.shape == (48, 48, 3)
    again = np.asarray(load_suite("emoji10", root=str(sets), per_style=6, size=48)[0].sources[0]())
    assert np.array_equal(first, again)  # same seed, same pixels, from a fresh build
    assert not np.array_equal(first, np.asarray(task.sources[1]()))  # image 1 is drawn differently
    # every image of the task is drawn from its own seed
    pixels = [np.asarray(task.sources[i]()).reshape(-1, 3).astype(float) for i in range(len(task.labels))]
    assert len({p.tobytes() for p in pixels}) == len(pixels)


def test_a_task_pickles_and_renders_the_same_pixels_after(sets):
    import pickle

    task = load_suite("emoji10", root=str(sets), per_style=2, size=24, tasks=["food"])[0]
    before = np.asarray(task.sources[3]())
    copy = pickle.loads(pickle.dumps(task))
    assert np.array_equal(np.asarray(copy.sources[3]()), before)


def test_svg_styles_are_rasterised(tmp_path):
    pytest.importorskip("resvg_py")
    root = write_sets(tmp_path / "sets", ("fluent-color",))
    task = load_suite("emoji10", root=str(root), per_style=2, size=32, tasks=["vehicles"])[0]
    assert task.style_names == ("fluent-color",)
    image = np.asarray(task.sources[0]())
    assert image.shape == (32, 32, 3) and image.std() > 0


def test_each_style_names_its_design_and_the_fluent_renditions_share_one():
    designs = {s.name: s.design for s in STYLES}
    assert designs == {"noto": "noto", "twemoji": "twemoji", "fluent-color": "fluent", "fluent-flat": "fluent"}


@pytest.mark.parametrize("seed", range(6))
def test_the_style_disjoint_split_holds_out_a_whole_design(seed):
    names, designs = ("a-1", "b", "a-2", "c"), ("a", "b", "a", "c")  # a-1 and a-2: two styles of one design
    labels = np.repeat(np.arange(3), 4 * 6)
    styles = np.tile(np.repeat(np.arange(4), 6), 3)
    calib, evaluation = split_indices(labels, "style-disjoint", 4, 3, seed, None, styles, names, designs)
    held = held_out_design(designs, seed)
    assert held == ("a", "b", "c")[seed % 3]  # designs in order of first appearance, rotated by the seed
    assert {designs[s] for s in styles[evaluation]} == {held}
    assert held not in {designs[s] for s in styles[calib]}  # never a twin style of the held-out one
    if held == "a":  # both styles of the design are evaluated on, neither calibrates
        assert set(styles[evaluation]) <= {0, 2} and not {0, 2} & set(styles[calib])
    assert np.bincount(labels[calib]).tolist() == [4] * 3 and np.bincount(labels[evaluation]).tolist() == [3] * 3
    assert not set(calib) & set(evaluation)
    alone = split_indices(labels, "style-disjoint", 4, 3, seed, None, styles, names)  # no designs: each style its own
    assert len(set(styles[alone[1]])) == 1 and names[styles[alone[1]][0]] == held_out_design(names, seed)


@pytest.mark.parametrize("seed", range(4))
def test_the_style_disjoint_split_of_the_suite_never_straddles_a_design(tmp_path, seed):
    root = write_sets(tmp_path / "sets", ("noto", "twemoji", "fluent-color", "fluent-flat"))
    tasks = load_suite("emoji10", root=str(root), per_style=8, size=24, tasks=["birds", "clothing"])
    for task in tasks:
        assert task.designs == ("noto", "twemoji", "fluent", "fluent")
        calib, evaluation = split_indices(task.labels, "style-disjoint", 5, 4, seed, task.class_names,
                                          task.styles, task.style_names, task.style_designs)
        held = held_out_design(task.designs, seed)
        eval_designs = {task.designs[s] for s in task.styles[evaluation]}
        calib_designs = {task.designs[s] for s in task.styles[calib]}
        assert eval_designs == {held} and held not in calib_designs and len(calib_designs) == 2
        if held == "fluent":
            assert not {task.style_names[s] for s in task.styles[calib]} & {"fluent-color", "fluent-flat"}
        assert not set(calib) & set(evaluation)
        assert np.bincount(task.labels[calib]).tolist() == [5] * task.num_classes
        assert np.bincount(task.labels[evaluation]).tolist() == [4] * task.num_classes
    helds = [held_out_design(tasks[0].designs, s) for s in range(3)]
    assert helds == ["noto", "twemoji", "fluent"]  # 3 seeds hold out each design once


def test_a_task_needs_one_design_per_style():
    with pytest.raises(DataError, match="1 style designs for 2 style names"):
        Task("t", ("x", "y"), [lambda: None] * 2, np.array([0, 1]), styles=np.array([0, 1]),
             style_names=("p", "q"), style_designs=("d",))


def test_style_disjoint_needs_two_styles_and_enough_images(tmp_path):
    root = write_sets(tmp_path / "sets", ("noto",))
    task = load_suite("emoji10", root=str(root), per_style=4, tasks=["food"])[0]
    with pytest.raises(DataError, match="at least 2 styles"):
        split_indices(task.labels, "style-disjoint", 2, 2, 0, task.class_names, task.styles, task.style_names)
    root = write_sets(tmp_path / "fluent", ("fluent-color", "fluent-flat"))
    task = load_suite("emoji10", root=str(root), per_style=2, size=24, tasks=["food"])[0]
    with pytest.raises(DataError, match="at least 2 styles of different designs; .*fluent-color, fluent-flat"):
        split_indices(task.labels, "style-disjoint", 1, 1, 0, task.class_names, task.styles, task.style_names,
                      task.style_designs)  # two styles, one design: nothing is left to calibrate on
    root = write_sets(tmp_path / "two")
    task = load_suite("emoji10", root=str(root), per_style=4, tasks=["food"])[0]
    with pytest.raises(DataError, match="needs 5"):
        split_indices(task.labels, "style-disjoint", 2, 5, 0, task.class_names, task.styles, task.style_names)


def test_no_installed_set_is_one_data_error(tmp_path):
    with pytest.raises(DataError, match="no emoji set found under .*make setup") as err:
        load_suite("emoji10", root=str(tmp_path))
    assert "\n" not in str(err.value)


def test_the_fingerprint_covers_the_set_files_and_the_recipe(sets):
    tasks = load_suite("emoji10", root=str(sets), per_style=3, tasks=["food"])
    key = tasks_fingerprint(tasks)
    assert tasks_fingerprint(load_suite("emoji10", root=str(sets), per_style=3, tasks=["food"])) == key
    assert tasks_fingerprint(load_suite("emoji10", root=str(sets), per_style=3, size=64, tasks=["food"])) != key
    path = tasks[0].inputs[1]
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert tasks_fingerprint(tasks) == key  # a touch alone keeps the key: listings are keyed by content
    path.write_bytes(path.read_bytes() + b" ")
    assert tasks_fingerprint(tasks) != key  # a changed emoji file changes the data stage's key
    changed = tasks_fingerprint(tasks)
    regrouped = [dataclasses.replace(t, style_designs=("one", "one")) for t in tasks]
    assert tasks_fingerprint(regrouped) != changed  # the styles' designs decide the style-disjoint split


def _run_config(root: Path, protocol: str) -> dict:
    return {
        "name": f"emoji-{protocol}", "plugins": ["tiny_plugin"], "encoders": ["tiny_cnn"],
        "suite": {"name": "emoji10", "protocol": protocol, "calib_per_class": 3, "eval_per_class": 3,
                  "options": {"root": str(root), "per_style": 4, "size": 16, "tasks": ["food", "birds"]}},
        "scores": ["magnitude"], "sparsities": [0.0, 0.5], "sources": ["food"], "recoveries": ["none"],
        "device": "cpu",
    }


@pytest.fixture
def plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(PROTOCOL_TESTS))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PROTOCOL_TESTS), os.environ.get("PYTHONPATH")])))


@pytest.mark.parametrize("protocol", ["style-disjoint", "heldout"])
def test_pait_run_on_the_suite_with_the_local_executor(sets, tmp_path, plugin_path, protocol):
    from gridutil import write_config

    from pait.cli import main

    config = write_config(tmp_path / "c.yaml", _run_config(sets, protocol))
    report = protocol == "style-disjoint"  # one report is enough: it shows the suite's example images
    assert main(["run", str(config), "--out", str(tmp_path / "runs"), "--quiet", *([] if report else ["--no-report"])]) == 0
    run = tmp_path / "runs" / f"emoji-{protocol}"
    table = pd.read_parquet(run / "results.parquet")
    assert set(table.target) == {"food", "birds"} and set(table.protocol) == {protocol}
    assert table.accuracy.between(0, 1).all()
    if report:
        text = (run / "report.md").read_text()
        assert "figures/examples.png" in text and "design held out from calibration with all its styles" in text
        assert Image.open(run / "figures" / "examples.png").size[0] > 200


def test_pait_run_on_the_suite_with_the_ray_executor(sets, tmp_path, plugin_path):
    ray = pytest.importorskip("ray")
    from pait.config import config_from_dict
    from pait.executors import run_grid

    config = config_from_dict(_run_config(sets, "style-disjoint"))
    local = run_grid(config, tmp_path / "local", show_progress=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_grid(config, tmp_path / "ray", show_progress=False, executor="ray", gpus_per_unit=0)
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(local, remote)
    assert set(remote.target) == {"food", "birds"} and remote.accuracy.between(0, 1).all()


def test_the_example_grid_shows_every_style_and_two_classes_of_each_task(sets):
    from pait.report.examples import TILE, example_grid

    tasks = load_suite("emoji10", root=str(sets), per_style=2, size=32, tasks=["food", "vehicles"])
    image, rows, columns = example_grid(tasks)
    assert rows == list(PNG_STYLES) and columns[:2] == ["food: hamburger", "food: pizza"] and len(columns) == 4
    assert image.shape == (2 * TILE, 4 * TILE, 3)
    tiles = [image[i * TILE:(i + 1) * TILE, j * TILE:(j + 1) * TILE] for i in range(2) for j in range(4)]
    assert all(t.std() > 0 for t in tiles) and len({t.tobytes() for t in tiles}) == 8


def test_an_example_figure_that_cannot_be_rendered_is_left_out_with_a_warning(tmp_path, monkeypatch, caplog):
    from pait.report.document import Figure, Text, to_markdown
    from pait.report.examples import example_blocks

    root = write_sets(tmp_path / "sets", ("noto", "fluent-flat"))
    suite = {"name": "emoji10", "options": {"root": str(root), "per_style": 1, "size": 16, "tasks": ["food"],
                                            "skip_bad_images": True}}  # load_suite takes the decoding option itself
    monkeypatch.setitem(sys.modules, "resvg_py", None)  # the rasteriser is missing: a DataError
    with caplog.at_level(logging.WARNING, logger="pait"):
        blocks = example_blocks(suite, tmp_path / "figures")
    assert len(blocks) == 1 and isinstance(blocks[0], Text)
    assert "are left out" in blocks[0].text and "resvg_py" in blocks[0].text
    assert "left out" in to_markdown(blocks) and not (tmp_path / "figures" / "examples.png").exists()
    assert any(r.levelno == logging.WARNING and "example images of suite emoji10 left out" in r.getMessage()
               for r in caplog.records)
    monkeypatch.undo()  # the rasteriser as it was
    pytest.importorskip("resvg_py")
    drawn = example_blocks(suite, tmp_path / "figures")  # with the rasteriser the figure is drawn
    assert len(drawn) == 1 and isinstance(drawn[0], Figure) and (tmp_path / "figures" / "examples.png").exists()
