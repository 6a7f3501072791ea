"""SIGKILL a grid run mid-way and rerun: nothing lost, no finished stage recomputed, same table."""

from __future__ import annotations

import time
from collections import Counter

import pandas as pd
from gridutil import cli_process, logged_stages, stage_dirs, tiny_config, write_config

from pait.cli import main

CONFIG = tiny_config(finetune={"epochs": 10, "lr": 0.05, "milestones": [5], "batch_size": 8})


def run_to_end(config_path, out) -> None:
    proc = cli_process(["run", str(config_path), "--out", str(out), "--quiet", "--no-report"])
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err


def test_killed_run_resumes_without_recomputing(tmp_path):
    path = write_config(tmp_path / "tiny.yaml", CONFIG)
    assert main(["run", str(path), "--out", str(tmp_path / "reference"), "--quiet", "--no-report"]) == 0
    reference = pd.read_parquet(tmp_path / "reference" / "tiny" / "results.parquet")

    out = tmp_path / "killed"
    proc = cli_process(["run", str(path), "--out", str(out), "--quiet", "--no-report"])
    deadline = time.monotonic() + 120
    while len(logged_stages(out / "tiny")) < 6 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -9, "the run ended before it could be killed"
    partial = logged_stages(out / "tiny")
    assert 6 <= len(partial) < 2 + 6 + 12

    run_to_end(path, out)
    table = pd.read_parquet(out / "tiny" / "results.parquet")
    pd.testing.assert_frame_equal(table, reference, check_exact=True)
    logged = logged_stages(out / "tiny")
    assert logged[: len(partial)] == partial
    assert max(Counter(logged).values()) == 1, "a finished stage was computed twice"
    finished = stage_dirs(out)
    assert set(logged) <= finished and len(finished) == 2 + 6 + 12
    assert len(finished - set(logged)) <= 1  # only if the kill fell between a stage's rename and its log line
