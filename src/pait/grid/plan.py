"""The grid: expand a config into units, run each unit's cached stages, gather the results table."""

from __future__ import annotations

import importlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pait.cache import StageStore, config_key, to_jsonable, write_if_changed
from pait.config import EncoderConfig, ExperimentConfig
from pait.errors import ConfigError
from pait.masks import DENSITIES_FROM, TRANSPLANT_SCORE, densities_sources
from pait.grid.stages import Context, load_tasks, prepare
from pait.grid.structure import WEIGHTS, structure_of
from pait.tasks import Task
from pait.typed import brief
from pait.grid.validation import check_encoders, check_output_root, no_repeats, validate_config

RESULT_COLUMNS = ["encoder", "score", "mask", "sparsity", "source", "recovery", "structure", "seed", "target",
                  "is_source", "stage", "accuracy", "loss", "protocol", "suite", "unit"]
STAGE_NAMES = ("unpruned", "pruned", "recovered")  # recovered: after the unit's recovery (sgd: re-trained)
FAILURES = "failures.json"  # units that failed after their retries; every executor rewrites it at the start


@dataclass(frozen=True)
class Unit:
    """One grid point: an encoder pruned with one score at one sparsity (``channels``: channel ratio) on one
    source task, recovered one way, in one replicate (seed). ``densities_from`` (``mask_options``) names the
    score whose global mask sets each layer's kept count, the unit's score then ranking within each layer."""

    encoder: EncoderConfig
    score: str
    sparsity: float
    source: str
    seed: int = 0
    recovery: str = "sgd"
    structure: str = WEIGHTS
    densities_from: str | None = None  # a transplant unit: magnitude at this score's per-layer densities


def unit_id(unit: Unit) -> str:
    """The unit's key in the results table and ``units.json``; a ``weights`` unit keeps the key it had
    before units had a structure, a plain mask the key it had before units had mask options."""
    fields = {k: v for k, v in to_jsonable(unit).items() if k != "structure"}
    if unit.densities_from is None:
        del fields["densities_from"]
    return config_key({**fields, **structure_of(unit.structure).index_fields()})


def mask_label(unit: Unit) -> str:
    """The results table's ``mask`` column: "" for a plain mask, ``densities_from=<score>`` for a transplant."""
    return "" if unit.densities_from is None else f"{DENSITIES_FROM}={unit.densities_from}"


def expand(config: ExperimentConfig, tasks: list[str]) -> list[Unit]:
    """Units in run order: encoder, seed, source, score, recovery, sparsity (so data and heads are shared by
    a seed's units and scores are reused across sparsities and recoveries). Each score S of
    ``mask_options.densities_from`` adds the units of ``magnitude`` at S's per-layer densities after the scores'."""
    sources = list(config.sources) if config.sources is not None else tasks
    unknown = [s for s in sources if s not in tasks]
    if unknown:
        raise ConfigError(f"source task(s) {', '.join(unknown)} not in the suite; its tasks: {', '.join(tasks)}")
    masks = [(score, None) for score in config.scores]
    masks += [(TRANSPLANT_SCORE, s) for s in densities_sources(config.mask_options)]
    return [Unit(e, score, sp, src, seed, rec, config.structure, densities)
            for e in config.encoders for seed in config.seeds for src in sources for score, densities in masks
            for rec in config.recoveries for sp in config.sparsities]


def packs(units: list[Unit], size: int) -> list[list[Unit]]:
    """Consecutive units of the same encoder, seed, source, score and recovery that their structure lets re-train
    together (``weights``, ``sgd``), in groups of at most ``size``; other units stay alone."""
    groups: list[list[Unit]] = []

    def group_of(u: Unit) -> tuple:
        return u.encoder, u.seed, u.source, u.score, u.recovery, u.densities_from

    for unit in units:
        last = groups[-1] if groups else None
        packable = structure_of(unit.structure).packs(unit)
        if last and packable and len(last) < size and group_of(last[0]) == group_of(unit):
            last.append(unit)
        else:
            groups.append([unit])
    return groups


def unit_rows(ctx: Context, unit: Unit, metrics: dict) -> list[dict]:
    """Rows of the results table for one unit: every task x {unpruned, pruned, recovered}."""
    rows = []
    base = {"encoder": unit.encoder.name, "score": unit.score, "mask": mask_label(unit), "sparsity": unit.sparsity,
            "source": unit.source, "recovery": unit.recovery, "structure": unit.structure, "seed": unit.seed,
            "protocol": ctx.config.suite.protocol, "suite": ctx.config.suite.name, "unit": unit_id(unit)}
    stages = {"unpruned": ctx.unpruned, "pruned": metrics["pruned"], "recovered": metrics["recovered"]}
    for target in ctx.splits:
        for stage in STAGE_NAMES:
            acc, loss = stages[stage][target]
            rows.append({**base, "target": target, "is_source": target == unit.source, "stage": stage,
                         "accuracy": acc, "loss": loss})
    return rows


def scores_sparsity(unit: Unit) -> float | None:
    """The sparsity a unit's scores are computed at: its own for per-sparsity weight scores, else None (one
    scores stage shared by every sparsity or channel ratio of the unit's source and score)."""
    return structure_of(unit.structure).scores_sparsity(unit)


def unit_scores_stage(ctx: Context, unit: Unit) -> None:
    """Compute, or find cached, the scores stage that ``unit`` reads."""
    structure_of(unit.structure).scores_stage(ctx, unit)


def unit_index_entry(ctx: Context, unit: Unit, directory: Path) -> dict:
    """Where a unit's stage outputs lie (relative to the run directory), for reports that read masks and scores."""
    structure = structure_of(unit.structure)
    stages = {"unit_dir": ctx.store.path("unit", structure.unit_key(ctx, unit)),
              "scores_dir": ctx.store.path("scores", structure.scores_key(ctx, unit))}
    return {"unit": unit_id(unit), "encoder": unit.encoder.name, "score": unit.score, "sparsity": unit.sparsity,
            "source": unit.source, "seed": unit.seed, "recovery": unit.recovery, **structure.index_fields(),
            **({"mask": mask_label(unit)} if unit.densities_from is not None else {}),
            **{k: os.path.relpath(v, directory) for k, v in stages.items()}}


def run_dir(config: ExperimentConfig, out_root: str | Path) -> Path:
    return Path(out_root) / config.name


def write_outputs(rows: list[dict], index: list[dict], directory: Path) -> pd.DataFrame:
    """Write the results table (``results.parquet``) and the units' stage index (``units.json``) atomically
    (each only when it changed)."""
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    write_if_changed(directory / "results.parquet", buffer.getvalue())
    write_if_changed(directory / "units.json", json.dumps(index, indent=1).encode())
    return table


def write_failures(directory: Path, failures: list[dict]) -> None:
    """Write ``<run>/failures.json`` (the report lists its units); ``[]`` clears an earlier run's list."""
    write_if_changed(directory / FAILURES, json.dumps(failures, indent=1).encode())


def import_plugins(config: ExperimentConfig) -> None:
    """Import the config's plugin modules, which register extra encoders, suites or scores; each is an
    absolute dotted module name (``my_pkg.plugin``), given once."""
    no_repeats("plugins", config.plugins)
    for module in config.plugins:
        if not module.split(".") or not all(part.isidentifier() for part in module.split(".")):
            raise ConfigError(f"plugins: {brief(module)} is not a module name (dotted Python identifiers, "
                              "such as my_package.my_plugin)")
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"plugin module {module!r} cannot be imported: {err}") from None
        except SyntaxError as err:
            raise ConfigError(f"plugin module {module!r} cannot be imported: {err.filename}, line {err.lineno}: "
                              f"{err.msg}") from None


def stage_store(config: ExperimentConfig, out_root: str | Path) -> StageStore:
    """The stage cache shared by all runs under ``out_root``, logging into this run's folder."""
    return StageStore(Path(out_root) / "stages", log_path=run_dir(config, out_root) / "stages.log")


def plan(config: ExperimentConfig, out_root: str | Path) -> tuple[list[Task], list[Unit]]:
    """Check the config (names, values, the output folder, the weights files, the suite's files, source
    tasks) before any heavy work, write ``config.json`` into the run folder (unless it holds this config
    already, so a finished run can be rerun from read-only storage), remove temporary folders left by
    killed runs, and list the grid's units in run order."""
    import_plugins(config)
    validate_config(config)
    check_output_root(out_root, config.name)
    check_encoders(config)
    tasks = load_tasks(config.suite)
    units = expand(config, [t.name for t in tasks])  # unknown source tasks fail here, before any decoding
    directory = run_dir(config, out_root)
    directory.mkdir(parents=True, exist_ok=True)
    write_if_changed(directory / "config.json", json.dumps(to_jsonable(config), indent=1).encode())
    stage_store(config, out_root).clean_stale()
    return tasks, units


def group_metrics(ctx: Context, group: list[Unit], on_epoch: Callable[[int, float], None] | None = None) -> list[dict]:
    """Metrics of a group from ``packs``: one unit re-trained alone, several re-trained together."""
    return structure_of(group[0].structure).group_metrics(ctx, group, on_epoch)


def run_group(config: ExperimentConfig, group: list[Unit], out_root: str | Path,
              store: StageStore | None = None) -> list[tuple[list[dict], dict]]:
    """Rows and stage-index entry of each unit of a group from ``packs``, computing whatever stage is not
    cached yet (idempotent: a rerun or a duplicate does no harm). Used by executors that run groups in
    separate processes; ``store`` (default: the run's) counts what was computed."""
    import_plugins(config)
    ctx = prepare(config, group[0].encoder, store or stage_store(config, out_root), group[0].seed)
    directory = run_dir(config, out_root)
    return [(unit_rows(ctx, unit, metrics), unit_index_entry(ctx, unit, directory))
            for unit, metrics in zip(group, group_metrics(ctx, group))]
