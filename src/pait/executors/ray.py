"""Run the grid's units as Ray tasks, on this machine or on a Ray cluster.

Each group of units from ``packs`` (one unit, or up to ``finetune.pack`` sparsities re-trained
together, as the local executor runs them) is a Ray task asking for its share of a GPU (fractional,
so small units pack onto one device) and of the CPUs. Work shared between units runs first, once:
one task per encoder prepares decoded data and ridge heads, one task per (encoder, source, score)
computes the scores, and the group tasks depend on them. Every task is idempotent through the stage
cache (and its per-stage locks), so a retried or duplicated task does no harm.

Shared storage: the output folder (``--out``) must be one filesystem path that every node reads and
writes (NFS, Lustre, a mounted bucket): the stage cache lives there and the tasks exchange nothing
else. A unit that still fails after its retries is recorded in ``<run>/failures.json`` and in the
report; the rest of the grid completes. The list is cleared at the start of every run.
"""

from __future__ import annotations

import math
import traceback
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pait.config import ExperimentConfig
from pait.errors import ConfigError
from pait.grid.plan import (
    Unit,
    import_plugins,
    packs,
    plan,
    run_dir,
    run_group,
    scores_sparsity,
    stage_store,
    unit_scores_stage,
    write_failures,
    write_outputs,
)
from pait.grid.stages import prepare


def _prepare(config: ExperimentConfig, unit: Unit, out_root: str) -> None:
    import_plugins(config)
    prepare(config, unit.encoder, stage_store(config, out_root), unit.seed)


def _scores(config: ExperimentConfig, unit: Unit, out_root: str, _ready: None) -> None:
    import_plugins(config)
    unit_scores_stage(prepare(config, unit.encoder, stage_store(config, out_root), unit.seed), unit)


def _group(config: ExperimentConfig, group: list[Unit], out_root: str, *_ready: None
           ) -> tuple[list[tuple[list[dict], dict]], bool]:
    """The group's rows and index entries, and whether any stage was computed (not all reused)."""
    store = stage_store(config, out_root)
    return run_group(config, group, out_root, store), store.computed > 0


def check_ray_options(num_cpus: int | None, gpus_per_unit: float | None, cpus_per_unit: float, retries: int) -> None:
    """Refuse, before Ray starts, the values with which Ray hangs or fails late: ``retries`` -1 (Ray retries a
    failing unit forever), ``num_cpus`` 0 (a local Ray that never schedules), negative or non-finite shares."""
    def whole(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def share(value: object) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if not whole(retries) or retries < 0:
        raise ConfigError(f"--retries must be a whole number >= 0, got {retries!r} (Ray retries forever at -1)")
    if num_cpus is not None and (not whole(num_cpus) or num_cpus < 1):
        raise ConfigError(f"--num-cpus must be at least 1, got {num_cpus!r} (a local Ray without CPUs never "
                          "schedules a unit)")
    if not share(cpus_per_unit) or cpus_per_unit <= 0:
        raise ConfigError(f"--cpus-per-unit must be a finite number > 0, got {cpus_per_unit!r}")
    if num_cpus is not None and cpus_per_unit > num_cpus:
        raise ConfigError(f"--cpus-per-unit {cpus_per_unit} exceeds --num-cpus {num_cpus}: no unit would ever "
                          "be scheduled")
    if gpus_per_unit is not None and (not share(gpus_per_unit) or gpus_per_unit < 0
                                      or (gpus_per_unit > 1 and gpus_per_unit != int(gpus_per_unit))):
        raise ConfigError(f"--gpus-per-unit must be a finite number >= 0 (a fraction up to 1, or whole GPUs), "
                          f"got {gpus_per_unit!r}")


def check_resources(resources: dict[str, float], gpus_per_unit: float, cpus_per_unit: float) -> None:
    """Refuse shares a local Ray can never grant (it has no autoscaler to add a node): a unit would wait forever."""
    for name, asked in (("CPU", cpus_per_unit), ("GPU", gpus_per_unit)):
        if asked > resources.get(name, 0):
            raise ConfigError(f"each unit asks for {asked:g} {name}(s), the local Ray has {resources.get(name, 0):g}: "
                              f"no unit would ever be scheduled; lower --{name.lower()}s-per-unit")


def connect(address: str | None, num_cpus: int | None) -> None:
    """Join the Ray cluster at ``address`` (``auto``, ``ray://host:port``), or start a local one."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'ray[default]'") from None
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def run_grid_ray(
    config: ExperimentConfig,
    out_root: str | Path = "runs",
    show_progress: bool = True,
    address: str | None = None,
    num_cpus: int | None = None,
    gpus_per_unit: float | None = None,
    cpus_per_unit: float = 1.0,
    retries: int = 2,
) -> pd.DataFrame:
    """Run the grid with Ray; the results table equals the local executor's (same rows, same order).

    ``gpus_per_unit`` defaults to 1 when the cluster has GPUs, else 0; use e.g. 0.25 to pack four
    units on one GPU. ``retries`` is how often a failing task is retried before its unit is reported
    as failed.
    """
    check_ray_options(num_cpus, gpus_per_unit, cpus_per_unit, retries)
    import ray

    _, units = plan(config, out_root)
    directory = run_dir(config, out_root)
    connect(address, num_cpus)
    if gpus_per_unit is None:
        gpus_per_unit = 1.0 if ray.cluster_resources().get("GPU", 0) else 0.0
    if address is None:
        check_resources(ray.cluster_resources(), gpus_per_unit, cpus_per_unit)
    write_failures(directory, [])
    options: dict[str, Any] = {"num_cpus": cpus_per_unit, "num_gpus": gpus_per_unit, "max_retries": retries,
                               "retry_exceptions": True}
    prepare_task = ray.remote(_prepare).options(**options)
    scores_task = ray.remote(_scores).options(**options)
    group_task = ray.remote(_group).options(**options)
    root = str(out_root)

    prepared: dict[Any, Any] = {}
    scored: dict[Any, Any] = {}
    pending: dict[Any, list[int]] = {}
    start = 0
    for group in packs(units, config.finetune.pack):
        ready = []
        for unit in group:
            replicate = (unit.encoder, unit.seed)
            if replicate not in prepared:
                prepared[replicate] = prepare_task.remote(config, unit, root)
            key = (*replicate, unit.source, unit.score, scores_sparsity(unit))
            if key not in scored:
                scored[key] = scores_task.remote(config, unit, root, prepared[replicate])
            ready.append(scored[key])
        pending[group_task.remote(config, group, root, *dict.fromkeys(ready))] = list(range(start, start + len(group)))
        start += len(group)

    done: dict[int, tuple[list[dict], dict]] = {}
    failures: list[dict] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, disable=not show_progress) as progress:
            bar = progress.add_task("units (ray)", total=len(units))
            while pending:
                finished, _ = ray.wait(list(pending), num_returns=1)
                indices = pending.pop(finished[0])
                try:
                    results, computed = ray.get(finished[0])
                    done.update(zip(indices, results))
                except Exception as err:  # units that failed after their retries: report them, go on
                    error = "".join(traceback.format_exception_only(err)).strip()
                    failures += [{"encoder": units[i].encoder.name, "score": units[i].score,
                                  "sparsity": units[i].sparsity, "source": units[i].source, "seed": units[i].seed,
                                  "recovery": units[i].recovery, "error": error}
                                 for i in indices]
                    computed = True
                if computed:  # progress to show; a rerun of cached units writes only at the end
                    _write(done, directory)
                progress.advance(bar, len(indices))
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        write_failures(directory, failures)
    return _write(done, directory)


def _write(done: dict[int, tuple[list[dict], dict]], directory: Path) -> pd.DataFrame:
    """Results and stage index of the finished units, in grid order (as the local executor writes them)."""
    order = sorted(done)
    return write_outputs([r for i in order for r in done[i][0]], [done[i][1] for i in order], directory)
