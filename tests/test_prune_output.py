"""``pait prune`` replaces its output folder whole: nothing of an earlier run stays beside the new files, a
run that fails or is killed while writing leaves the previous output as it was, and the next run removes
the temporaries a killed run left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from colour_images import write_colour_folder
from prune_child import argv

import pait.prune.report
from pait.cli import main
from pait.errors import OutputError
from pait.locks import file_lock
from pait.outputs import clean_leftovers, replace_folder

UNSTRUCTURED = {"pruned.safetensors", "mask.safetensors", "report.json", "report.md"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return write_colour_folder(tmp_path_factory.mktemp("images"), 16)


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


def sparsity(out: Path) -> float:
    return json.loads((out / "report.json").read_text())["options"]["sparsity"]


def test_a_prune_into_a_folder_of_an_earlier_run_leaves_none_of_its_files(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for stale in ("pruned.onnx", "structure.json", "report.md", ".pruned.safetensors.x1y2z3", ".report.json.partial"):
        (out / stale).write_text("from an earlier run")
    assert main(argv(str(folder), str(out), "0.5")) == 0
    assert set(contents(out)) == UNSTRUCTURED
    assert "from an earlier run" not in (out / "report.md").read_text()
    assert siblings(out) == []


def test_a_folder_holding_other_files_is_refused_and_kept(folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(argv(str(folder), str(out), "0.5")) == 2
    assert "holds notes.txt, which this command does not write" in capsys.readouterr().err
    assert contents(out) == {"notes.txt": b"mine"}


def test_a_failure_while_writing_leaves_the_previous_output_whole(folder, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert main(argv(str(folder), str(out), "0.5")) == 0
    before = contents(out)

    def fail(*args):
        raise RuntimeError("injected while writing")

    monkeypatch.setattr(pait.prune.report, "write_report", fail)
    with pytest.raises(RuntimeError, match="injected"):
        main(argv(str(folder), str(out), "0.3"))
    assert contents(out) == before and siblings(out) == []


def test_a_run_killed_while_writing_leaves_the_previous_output_and_the_next_run_cleans_up(folder, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    child = [sys.executable, str(Path(__file__).parent / "prune_child.py"), str(folder), str(out)]
    assert subprocess.run([*child, "0.5"], env=env, capture_output=True).returncode == 0
    before = contents(out)
    killed = subprocess.run([*child, "0.3", "--kill-after-first-file"], env=env, capture_output=True)
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert contents(out) == before and sparsity(out) == 0.5
    assert [name.split("-")[0] for name in siblings(out)] == [".out.pait"]  # the killed run's half-written folder
    assert subprocess.run([*child, "0.3"], env=env, capture_output=True).returncode == 0
    assert set(contents(out)) == UNSTRUCTURED and sparsity(out) == 0.3
    assert siblings(out) == []


def test_a_run_killed_between_its_two_renames_gets_the_previous_folder_back(tmp_path):
    out = tmp_path / "out"
    aside = tmp_path / ".out.pait-old-0a1b2c3d"
    aside.mkdir()
    (aside / "report.json").write_text("{}")
    (tmp_path / ".out.pait-new-zz").mkdir()
    clean_leftovers(out)
    assert contents(out) == {"report.json": b"{}"} and siblings(out) == []


def test_a_folder_another_run_is_filling_is_not_taken_for_a_leftover(tmp_path):
    out = tmp_path / "out"
    live = tmp_path / ".out.pait-new-live"
    live.mkdir()
    with file_lock(live, folder=True):
        clean_leftovers(out)
        assert live.is_dir()
    clean_leftovers(out)
    assert not live.exists()


def test_replace_folder_refuses_a_foreign_file_that_appeared_while_writing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(OutputError, match="holds intruder"), replace_folder(out, ("a",)) as new:
        (new / "a").write_text("new")
        out.mkdir()
        (out / "intruder").write_text("someone else's")
    assert contents(out) == {"intruder": b"someone else's"} and siblings(out) == []


def test_the_new_folder_takes_the_mode_of_a_plain_mkdir(tmp_path):
    previous = os.umask(0o022)
    try:
        with replace_folder(tmp_path / "out", ("a",)) as new:
            (new / "a").write_text("x")
    finally:
        os.umask(previous)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755


def test_a_failed_second_rename_puts_the_previous_folder_back(tmp_path, monkeypatch):
    import errno

    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("previous")
    real_rename = os.rename

    def rename(src, dst):
        if Path(dst) == out and ".pait-new-" in Path(src).name:
            raise OSError(errno.EIO, "Input/output error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OutputError, match="Input/output error"), replace_folder(out, ("a",)) as new:
        (new / "a").write_text("new")
    assert contents(out) == {"a": b"previous"} and siblings(out) == []


def test_without_file_locks_a_folder_that_may_be_live_is_not_taken_for_a_leftover(tmp_path, monkeypatch):
    import errno

    import pait.locks

    def flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(pait.locks.fcntl, "flock", flock)
    live = tmp_path / ".out.pait-new-live"
    live.mkdir()
    clean_leftovers(tmp_path / "out")
    assert live.is_dir()
