"""Helpers for grid tests: configs written to YAML, the CLI run in-process or in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"
CLI = "import sys, tiny_plugin; from pait.cli import main; sys.exit(main(sys.argv[1:]))"


def tiny_config(**changes) -> dict:
    """A grid on the tiny suite: tiny_cnn, 3 tasks, magnitude and random, 2 sparsities, CPU."""
    config = {
        "name": "tiny",
        "encoders": [{"name": "tiny_cnn"}],
        "suite": {"name": "tiny", "protocol": "heldout", "calib_per_class": 4, "eval_per_class": 4},
        "scores": ["magnitude", "random"],
        "sparsities": [0.3, 0.6],
        "finetune": {"epochs": 3, "lr": 0.05, "milestones": [2], "batch_size": 8},
        "device": "cpu",
    }
    config.update(changes)
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def cli_process(args: list[str]) -> subprocess.Popen:
    """``pait ARGS`` in a subprocess that has registered the tiny encoder and suite."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(HERE)])}
    return subprocess.Popen([sys.executable, "-c", CLI, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_after_barrier(config: dict, out: Path, barrier) -> None:
    """Run the grid of ``config`` on ``out`` once every process holding ``barrier`` is ready (in a
    ``spawn`` child: registers the tiny encoder and suite first)."""
    import tiny_plugin  # noqa: F401

    from pait.config import config_from_dict
    from pait.executors import run_grid

    barrier.wait(timeout=120)
    run_grid(config_from_dict(config), out, show_progress=False)


def logged_stages(run: Path) -> list[tuple[str, str]]:
    """(stage, key) of every computed stage, in order, from ``run/stages.log``."""
    path = run / "stages.log"
    if not path.exists():
        return []
    return [(e["stage"], e["key"]) for e in map(json.loads, path.read_text().splitlines()) if e]


def snapshot(out: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime_ns) of every file under ``out``: a rewrite, even atomic and identical, changes them."""
    return {str(p.relative_to(out)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


def stage_dirs(out: Path) -> set[tuple[str, str]]:
    """(stage, key) of every finished stage directory in the store under ``out``."""
    return {(p.parent.name, p.name) for p in (out / "stages").glob("*/*") if p.is_dir() and not p.name.startswith(".")}
