"""Per-stage locks: two runs on one --out compute every stage once; temporary folders of killed runs
are removed at the start of a run, those of a live run are left alone."""

from __future__ import annotations

import errno
import fcntl
import multiprocessing
from collections import Counter

import pandas as pd
from gridutil import logged_stages, run_after_barrier, stage_dirs, tiny_config

from pait.cache import StageStore, file_lock
from pait.config import config_from_dict
from pait.grid.plan import plan

CONFIG = tiny_config(scores=["magnitude"], sources=["t0", "t1"])
STAGES = 1 + 1 + 2 + 4  # data, heads, scores per source, units (sources x sparsities)


def test_two_runs_on_one_out_compute_every_stage_once(tmp_path):
    out = tmp_path / "out"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)  # both start the grid at the same moment: they race for every stage
    procs = [context.Process(target=run_after_barrier, args=(CONFIG, out, barrier)) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
        assert proc.exitcode == 0
    logged = logged_stages(out / "tiny")
    assert len(logged) == STAGES and max(Counter(logged).values()) == 1, "a stage was computed twice"
    assert set(logged) == stage_dirs(out)
    table = pd.read_parquet(out / "tiny" / "results.parquet")
    assert len(table) == 2 * 2 * 3 * 3 and table.accuracy.notna().all()


def stale(root, stage: str, key: str, suffix: str):
    path = root / stage / f".{key}.{suffix}"
    path.mkdir(parents=True)
    (path / "scores.safetensors").write_bytes(b"half-written")
    return path


def test_temporary_folders_are_removed_unless_their_lock_is_held(tmp_path):
    store = StageStore(tmp_path / "stages")
    dead, busy = "a" * 20, "b" * 20
    left = stale(store.root, "scores", dead, "x1y2")
    live = stale(store.root, "unit", busy, "z3w4")
    finished = store.root / "unit" / ("c" * 20)
    finished.mkdir()
    with file_lock(store.lock_path("unit", busy)):  # another run is filling `live` right now
        assert store.clean_stale() == [left]
    assert not left.exists() and live.is_dir() and finished.is_dir()
    assert store.clean_stale() == [live]


def test_a_run_starts_by_removing_temporary_folders_of_killed_runs(tmp_path):
    left = stale(tmp_path / "out" / "stages", "data", "d" * 20, "q9")
    plan(config_from_dict(tiny_config()), tmp_path / "out")
    assert not left.exists()


def test_a_filesystem_without_locks_computes_unlocked_and_removes_nothing(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    store = StageStore(tmp_path / "stages")
    left = stale(store.root, "scores", "a" * 20, "x1")
    assert store.clean_stale() == [] and left.is_dir()  # it may be a live run's: leave it
    with store.claim("scores", {"k": 1}) as todo:
        assert todo
        with store.writing("scores", {"k": 1}):
            pass
    with store.claim("scores", {"k": 1}) as todo:
        assert not todo
