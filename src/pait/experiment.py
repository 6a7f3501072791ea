"""The grid: expand a config into units, run each unit's cached stages, gather the results table."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pait.cache import StageStore, config_key, to_jsonable, write_atomic
from pait.config import EncoderConfig, ExperimentConfig
from pait.masks import check_sparsity
from pait.pipeline import Context, prepare, unit_stage, units_stage
from pait.scores import get_score

RESULT_COLUMNS = ["encoder", "score", "sparsity", "source", "target", "is_source", "stage", "accuracy", "loss",
                  "seed", "protocol", "suite", "unit"]
STAGE_NAMES = ("unpruned", "pruned", "retrained")


@dataclass(frozen=True)
class Unit:
    """One grid point: an encoder pruned with one score at one sparsity on one source task."""

    encoder: EncoderConfig
    score: str
    sparsity: float
    source: str


def validate(config: ExperimentConfig) -> None:
    """Refuse bad names and values before any heavy work starts."""
    for s in config.sparsities:
        check_sparsity(s)
    for score in config.scores:
        get_score(score)
    if not config.encoders:
        raise ValueError("the config names no encoder")
    if config.finetune.pack < 1:
        raise ValueError(f"finetune.pack must be at least 1, got {config.finetune.pack}")


def expand(config: ExperimentConfig, tasks: list[str]) -> list[Unit]:
    """Units in run order: encoder, source, score, sparsity (so scores are reused across sparsities)."""
    sources = list(config.sources) if config.sources is not None else tasks
    unknown = [s for s in sources if s not in tasks]
    if unknown:
        raise ValueError(f"source task(s) {', '.join(unknown)} not in the suite; its tasks: {', '.join(tasks)}")
    return [Unit(e, score, sp, src) for e in config.encoders for src in sources for score in config.scores
            for sp in config.sparsities]


def packs(units: list[Unit], size: int) -> list[list[Unit]]:
    """Consecutive units of the same encoder, source and score, in groups of at most ``size``."""
    groups: list[list[Unit]] = []
    for unit in units:
        last = groups[-1] if groups else None
        if last and len(last) < size and (last[0].encoder, last[0].source, last[0].score) == (
                unit.encoder, unit.source, unit.score):
            last.append(unit)
        else:
            groups.append([unit])
    return groups


def unit_rows(ctx: Context, unit: Unit, metrics: dict) -> list[dict]:
    """Rows of the results table for one unit: every task x {unpruned, pruned, retrained}."""
    rows = []
    base = {"encoder": unit.encoder.name, "score": unit.score, "sparsity": unit.sparsity, "source": unit.source,
            "seed": ctx.config.seed, "protocol": ctx.config.suite.protocol, "suite": ctx.config.suite.name,
            "unit": config_key(unit)}
    stages = {"unpruned": ctx.unpruned, "pruned": metrics["pruned"], "retrained": metrics["retrained"]}
    for target in ctx.splits:
        for stage in STAGE_NAMES:
            acc, loss = stages[stage][target]
            rows.append({**base, "target": target, "is_source": target == unit.source, "stage": stage,
                         "accuracy": acc, "loss": loss})
    return rows


def run_dir(config: ExperimentConfig, out_root: str | Path) -> Path:
    return Path(out_root) / config.name


def run_grid(config: ExperimentConfig, out_root: str | Path = "runs", show_progress: bool = True) -> pd.DataFrame:
    """Run every unit of the grid (skipping finished stages) and write ``<run>/results.parquet``."""
    validate(config)
    directory = run_dir(config, out_root)
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / "config.json", json.dumps(to_jsonable(config), indent=1).encode())
    store = StageStore(Path(out_root) / "stages", log_path=directory / "stages.log")
    rows: list[dict] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=not show_progress, transient=False) as progress:
        for encoder_config in config.encoders:
            step = progress.add_task(f"{encoder_config.name}: features and heads", total=None)
            ctx = prepare(config, encoder_config, store)
            units = [u for u in expand(config, list(ctx.splits)) if u.encoder == encoder_config]
            progress.update(step, description=f"{encoder_config.name}: units", total=len(units), completed=0)
            epochs = progress.add_task("  re-training", total=config.finetune.epochs, visible=False)
            for group in packs(units, config.finetune.pack):
                first = group[0]
                label = f"  {first.score} @ {', '.join(f'{u.sparsity:.2%}' for u in group)} on {first.source}"
                progress.update(epochs, description=label, completed=0, visible=True)
                if len(group) == 1:
                    results = [unit_stage(ctx, first.source, first.score, first.sparsity,
                                          on_epoch=lambda e, _loss: progress.update(epochs, completed=e + 1))]
                else:
                    results = units_stage(ctx, first.source, first.score, [u.sparsity for u in group])
                for unit, metrics in zip(group, results):
                    rows.extend(unit_rows(ctx, unit, metrics))
                progress.advance(step, len(group))
            progress.update(epochs, visible=False)
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    write_atomic(directory / "results.parquet", buffer.getvalue())
    return table
