"""The run folder: a rerun of a finished run writes nothing (so it can be re-read from read-only
storage), and a local run clears an earlier run's failures."""

from __future__ import annotations

import json

from gridutil import snapshot, tiny_config

from pait.config import config_from_dict
from pait.executors import run_grid
from pait.report import build_report

CONFIG = tiny_config(scores=["magnitude"], sources=["t0"], finetune={"epochs": 1, "lr": 0.05, "milestones": [1]})


def test_a_rerun_of_a_finished_run_writes_nothing(tmp_path):
    config = config_from_dict(CONFIG)
    first = run_grid(config, tmp_path, show_progress=False)
    before = snapshot(tmp_path)
    assert {"tiny/config.json", "tiny/results.parquet", "tiny/units.json", "tiny/failures.json"} <= set(before)
    again = run_grid(config, tmp_path, show_progress=False)
    assert snapshot(tmp_path) == before
    assert again.equals(first)


def test_a_changed_config_is_written(tmp_path):
    run_grid(config_from_dict(CONFIG), tmp_path, show_progress=False)
    run_grid(config_from_dict({**CONFIG, "sparsities": [0.3]}), tmp_path, show_progress=False)
    assert json.loads((tmp_path / "tiny" / "config.json").read_text())["sparsities"] == [0.3]


def test_a_local_run_clears_an_earlier_runs_failures(tmp_path):
    run = tmp_path / "tiny"
    run.mkdir()
    stale = [{"encoder": "tiny_cnn", "score": "always_fails", "sparsity": 0.3, "source": "t0", "error": "RuntimeError: x"}]
    (run / "failures.json").write_text(json.dumps(stale))
    run_grid(config_from_dict(CONFIG), tmp_path, show_progress=False)
    assert json.loads((run / "failures.json").read_text()) == []
    assert "Failed units" not in build_report(run).read_text()
