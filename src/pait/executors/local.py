"""The local executor: run the grid's units one after the other in this process, with progress bars.

It stops at the first failing unit (the error propagates); ``<run>/failures.json`` is rewritten as an
empty list at the start, so an earlier run's failures never show in this run's report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pait.config import ExperimentConfig
from pait.grid.plan import (
    group_metrics,
    packs,
    plan,
    run_dir,
    stage_store,
    unit_index_entry,
    unit_rows,
    write_failures,
    write_outputs,
)
from pait.grid.stages import prepare


def run_grid_local(config: ExperimentConfig, out_root: str | Path = "runs", show_progress: bool = True) -> pd.DataFrame:
    """Run every unit here, in grid order, re-training up to ``finetune.pack`` sparsities together."""
    tasks, units = plan(config, out_root)
    directory = run_dir(config, out_root)
    write_failures(directory, [])
    store = stage_store(config, out_root)
    rows: list[dict] = []
    index: list[dict] = []
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, disable=not show_progress, transient=False) as progress:
        for encoder_config, seed in dict.fromkeys((u.encoder, u.seed) for u in units):
            name = f"{encoder_config.name} (seed {seed})"
            step = progress.add_task(f"{name}: features and heads", total=None)
            ctx = prepare(config, encoder_config, store, seed, tasks, progress)
            mine = [u for u in units if (u.encoder, u.seed) == (encoder_config, seed)]
            progress.update(step, description=f"{name}: units", total=len(mine), completed=0)
            epochs = progress.add_task("  re-training", total=config.finetune.epochs, visible=False)
            for group in packs(mine, config.finetune.pack):
                first = group[0]
                label = (f"  {first.score} @ {', '.join(f'{u.sparsity:.2%}' for u in group)} on {first.source}, "
                         f"recovery {first.recovery}")
                progress.update(epochs, description=label, completed=0, visible=True)
                computed = store.computed
                results = group_metrics(ctx, group, on_epoch=lambda e, _loss: progress.update(epochs, completed=e + 1))
                for unit, metrics in zip(group, results):
                    rows.extend(unit_rows(ctx, unit, metrics))
                    index.append(unit_index_entry(ctx, unit, directory))
                if store.computed > computed:  # progress to show; a rerun of cached units writes only at the end
                    write_outputs(rows, index, directory)
                progress.advance(step, len(group))
            progress.update(epochs, visible=False)
    return write_outputs(rows, index, directory)
