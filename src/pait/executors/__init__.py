"""Executors run the units of a planned grid: ``local`` (this process) or ``ray`` (Ray tasks)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pait.config import ExperimentConfig
from pait.errors import ConfigError

EXECUTORS = ("local", "ray")


def run_grid(config: ExperimentConfig, out_root: str | Path = "runs", show_progress: bool = True,
             executor: str = "local", **executor_options: object) -> pd.DataFrame:
    """Run every unit of the grid (skipping finished stages) and write ``<run>/results.parquet``.

    Names, values, the suite's files and the source tasks are all checked before anything is decoded
    or computed. The table is rewritten atomically after every unit, so progress is visible and a
    killed run leaves a consistent (partial) table; a rerun recomputes no finished stage.
    ``executor="ray"`` runs units as Ray tasks (see ``pait.executors.ray``); the default runs them here.
    """
    if executor == "ray":
        from pait.executors.ray import run_grid_ray

        return run_grid_ray(config, out_root, show_progress=show_progress, **executor_options)
    if executor != "local":
        raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if executor_options:
        raise ConfigError(f"options {', '.join(executor_options)} apply to the ray executor only")
    from pait.executors.local import run_grid_local

    return run_grid_local(config, out_root, show_progress)
