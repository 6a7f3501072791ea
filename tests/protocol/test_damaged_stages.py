"""A damaged stage (a file truncated, deleted or overwritten, its manifest lost) is computed again with a
warning naming it, and the results are those of the intact cache; a stage write that fails is one line."""

from __future__ import annotations

import errno
import json
import logging
import os
import resource
import shutil
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
import torch
from gridutil import logged_stages, tiny_config
from safetensors.torch import save_file

import pait.cache
from pait.cache import MANIFEST, StageStore, file_sha256
from pait.config import config_from_dict
from pait.errors import OutputError
from pait.executors import run_grid

CONFIG = tiny_config(name="tiny", scores=["magnitude"], sparsities=[0.5], sources=["t0"],
                     finetune={"epochs": 1, "lr": 0.05, "milestones": [1], "batch_size": 8})


def run(out: Path) -> tuple[pd.DataFrame, Counter]:
    """The grid's table and the stages it computed."""
    before = len(logged_stages(out / "tiny"))
    table = run_grid(config_from_dict(CONFIG), out, show_progress=False)
    return table, Counter(stage for stage, _ in logged_stages(out / "tiny")[before:])


def stage_dir(out: Path, stage: str) -> Path:
    (path,) = [p for p in (out / "stages" / stage).iterdir() if p.is_dir() and not p.name.startswith(".")]
    return path


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def overwrite_same_size(path: Path) -> None:
    """Flip one byte in the middle, keeping size and mtime (what a size check alone would miss)."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


DAMAGES = {
    "data: a task file truncated": ("data", lambda d: truncate(d / "task000.safetensors")),
    "data: tasks.json deleted": ("data", lambda d: (d / "tasks.json").unlink()),
    "heads: unpruned.json emptied": ("heads", lambda d: (d / "unpruned.json").write_text("")),
    "heads: heads overwritten, same size and mtime": ("heads", lambda d: overwrite_same_size(d / "heads.safetensors")),
    "scores: scores deleted": ("scores", lambda d: (d / "scores.safetensors").unlink()),
    "scores: a folder instead of the scores": ("scores", lambda d: ((d / "scores.safetensors").unlink(),
                                                                    (d / "scores.safetensors").mkdir())),
    "scores: a file instead of the stage folder": ("scores", lambda d: (shutil.rmtree(d), d.write_text("x"))),
    "unit: metrics.json overwritten, same size": ("unit", lambda d: overwrite_same_size(d / "metrics.json")),
    "unit: manifest deleted": ("unit", lambda d: (d / MANIFEST).unlink()),
    "unit: manifest not JSON": ("unit", lambda d: (d / MANIFEST).write_text("{")),
    "unit: manifest of another shape": ("unit", lambda d: (d / MANIFEST).write_text('{"files": [1]}')),
}


@pytest.mark.parametrize("case", list(DAMAGES))
def test_a_damaged_stage_is_computed_again_with_a_warning(tmp_path, caplog, case):
    stage, damage = DAMAGES[case]
    first, computed = run(tmp_path)
    assert computed == {"data": 1, "heads": 1, "scores": 1, "unit": 1}
    folder = stage_dir(tmp_path, stage)
    damage(folder)
    if stage == "scores":  # a finished unit does not read its scores: remove it (missing, not damaged) so one must
        shutil.rmtree(stage_dir(tmp_path, "unit"))
    pait.cache._VERIFIED.clear()  # as in a new process: nothing verified yet
    with caplog.at_level(logging.WARNING, logger="pait.cache"):
        again, computed = run(tmp_path)
    assert computed == {stage: 1, **({"unit": 1} if stage == "scores" else {})}, computed  # the others' keys hold
    pd.testing.assert_frame_equal(again, first, check_exact=True)
    warnings = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warnings) == 1 and f"the {stage} stage {folder} is damaged" in warnings[0], warnings
    assert StageStore(tmp_path / "stages").done(stage, json.loads((folder / "config.json").read_text()))
    _, computed = run(tmp_path)
    assert computed == Counter()  # the new copy verifies
    assert not [p for p in (tmp_path / "stages" / stage).iterdir() if ".damaged-" in p.name]


def test_the_manifest_lists_every_file_with_its_size_and_hash(tmp_path):
    store = StageStore(tmp_path)
    with store.writing("unit", {"k": 1}) as out:
        (out / "a.json").write_text("{}")
        (out / "sub").mkdir()
        (out / "sub" / "b.bin").write_bytes(b"x" * 1000)
    folder = store.path("unit", {"k": 1})
    files = json.loads((folder / MANIFEST).read_text())["files"]
    assert sorted(files) == ["a.json", "config.json", "sub/b.bin"]
    for rel, entry in files.items():
        assert entry == {"size": (folder / rel).stat().st_size, "sha256": file_sha256(folder / rel)}
    assert store.done("unit", {"k": 1})
    (folder / "sub" / "b.bin").unlink()
    assert not store.done("unit", {"k": 1})


def test_a_stage_folder_without_a_manifest_is_not_done(tmp_path):
    """As a stage written before manifests existed would be (schema 2 keys are not looked up any more)."""
    store = StageStore(tmp_path)
    folder = store.path("scores", {"k": 1})
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert not store.done("scores", {"k": 1})
    with store.claim("scores", {"k": 1}) as todo:
        assert todo and not folder.exists()
        with store.writing("scores", {"k": 1}) as out:
            (out / "scores.safetensors").write_bytes(b"new")
    assert store.done("scores", {"k": 1})


def test_each_file_is_hashed_once_per_process_while_unchanged(tmp_path, monkeypatch):
    store = StageStore(tmp_path)
    with store.writing("data", {"k": 1}) as out:
        (out / "big.bin").write_bytes(os.urandom(1 << 16))
    pait.cache._VERIFIED.clear()
    calls = []
    real = pait.cache.file_sha256
    monkeypatch.setattr(pait.cache, "file_sha256", lambda p: calls.append(Path(p).name) or real(p))
    assert all(store.done("data", {"k": 1}) for _ in range(5))
    assert sorted(calls) == ["big.bin", "config.json"]
    overwrite_same_size(store.path("data", {"k": 1}) / "big.bin")  # ctime changes: hashed again, found damaged
    assert not store.done("data", {"k": 1})


@pytest.mark.parametrize("failing", ["stat", "sha256", "manifest"])
def test_a_stage_file_that_cannot_be_read_is_an_error_naming_it_and_the_stage_is_kept(tmp_path, monkeypatch, failing):
    """EIO, ESTALE or EACCES on a file that is there: not a damaged stage to throw away and recompute."""
    store = StageStore(tmp_path)
    with store.writing("unit", {"k": 1}) as out:
        (out / "metrics.json").write_text("{}")
    folder = store.path("unit", {"k": 1})
    culprit = folder / (MANIFEST if failing == "manifest" else "metrics.json")
    pait.cache._VERIFIED.clear()
    real_stat, real_read, real_sha256 = Path.stat, Path.read_text, pait.cache.file_sha256

    def fail(real, code, when):
        def call(path, *args, **kwargs):
            if when and Path(path) == culprit:
                raise OSError(code, os.strerror(code), str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(Path, "stat", fail(real_stat, errno.ESTALE, failing == "stat"))
    monkeypatch.setattr(Path, "read_text", fail(real_read, errno.EIO, failing == "manifest"))
    monkeypatch.setattr(pait.cache, "file_sha256", fail(real_sha256, errno.EACCES, failing == "sha256"))
    for attempt in (lambda: store.done("unit", {"k": 1}), lambda: store.claim("unit", {"k": 1}).__enter__()):
        with pytest.raises(OutputError, match=f"cannot read {culprit}: "):
            attempt()
    monkeypatch.undo()
    assert store.done("unit", {"k": 1})


def test_a_damaged_stage_that_cannot_be_replaced_is_one_error_naming_it(tmp_path, monkeypatch):
    store = StageStore(tmp_path)
    with store.writing("heads", {"k": 1}) as out:
        (out / "heads.safetensors").write_bytes(b"abc")
    folder = store.path("heads", {"k": 1})
    (folder / "heads.safetensors").write_bytes(b"ab")
    real = os.rename

    def read_only(src, dst):
        if ".damaged-" in str(dst):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(src, dst)

    monkeypatch.setattr(pait.cache.os, "rename", read_only)
    with pytest.raises(OutputError, match=f"the heads stage {folder} is damaged .heads.safetensors holds 2 bytes, "
                                          "not 3. and cannot be replaced: Read-only file system"):
        with store.claim("heads", {"k": 1}):
            pass
    assert (folder / "heads.safetensors").read_bytes() == b"ab"


@contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """Writes beyond ``size`` bytes fail with EFBIG (as a full disk fails with ENOSPC) while in this block."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel's signal kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_a_write_failing_inside_safetensors_is_one_error_and_leaves_nothing(tmp_path):
    store = StageStore(tmp_path)
    with pytest.raises(OutputError, match=f"cannot write the scores stage under {tmp_path / 'scores'}: File too large"):
        with store.writing("scores", {"k": 1}) as out:
            with file_size_limit(1000):
                save_file({"w": torch.zeros(1000)}, str(out / "scores.safetensors"))
    assert [p.name for p in (tmp_path / "scores").iterdir()] == []  # nothing half-written is left


def test_an_unwritable_stages_log_is_one_error(tmp_path):
    (tmp_path / "stages.log").mkdir()
    store = StageStore(tmp_path / "stages", log_path=tmp_path / "stages.log")
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'stages.log'}: Is a directory"):
        with store.writing("unit", {"k": 1}) as out:
            (out / "metrics.json").write_text("{}")
