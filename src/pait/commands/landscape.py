"""Fig. 4: the loss surface on the plane through the pre-trained, pruned and re-trained weights of one unit.

Rebuilds the run's encoder, data and frozen heads from the stage cache, reads the unit's mask and
re-trained weights (the run needs ``save_weights: true``), and evaluates the source loss and one
transfer task's loss on a GRID x GRID grid of the plane. BatchNorm stays in eval mode with the
pre-trained running statistics, as in re-training; only parameters move. The surface is cached in
RUN_DIR/landscape/*.npz, saved after every grid row: an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from pait.config import config_from_dict
from pait.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

HELP = "Fig. 4: loss surface on the plane of pre-trained, pruned and re-trained weights"
MAX_GRID = 201  # grid points per axis: 40,401 points, each a full evaluation of two tasks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run directory (OUT/NAME)")
    parser.add_argument("--unit", help="unit key (the results table's `unit` column)")
    parser.add_argument("--source", help="source task (default: the run's first)")
    parser.add_argument("--score", help="score (default: the run's first)")
    parser.add_argument("--sparsity", type=float, help="sparsity (default: the run's highest)")
    parser.add_argument("--encoder", help="encoder (default: the run's first)")
    parser.add_argument("--seed", type=int, help="replicate seed (default: the run's first)")
    parser.add_argument("--recovery", help="recovery (default: the run's first)")
    parser.add_argument("--transfer", help="transfer task (default: the first task that is not the source)")
    parser.add_argument("--grid", type=int, default=11, help=f"grid points per axis (2 to {MAX_GRID})")
    parser.add_argument("--chunk", type=int, default=4, help="grid points evaluated together in one batched pass")


def select_unit(results: pd.DataFrame, args: argparse.Namespace) -> pd.Series:
    """The results row naming the chosen unit: by key, or by the given (or default) fields."""
    rows = results[results.stage == "recovered"]
    if args.unit:
        rows = rows[rows.unit == args.unit]
    else:
        for column, value in (("encoder", args.encoder), ("source", args.source), ("score", args.score),
                              ("seed", args.seed), ("recovery", args.recovery)):
            if rows.empty:
                break
            rows = rows[rows[column] == (value if value is not None else rows[column].iloc[0])]
        rows = rows if rows.empty else rows[rows.sparsity == (args.sparsity if args.sparsity is not None else rows.sparsity.max())]
    if rows.empty:
        chosen = {k: getattr(args, k) for k in ("unit", "encoder", "source", "score", "sparsity") if getattr(args, k) is not None}
        raise ConfigError(f"no re-trained unit of this run matches the selection {chosen or '(defaults)'}")
    return rows.iloc[0]


def run(args: argparse.Namespace) -> int:
    from pait.cache import StageStore
    from pait.grid.plan import import_plugins
    from pait.grid.landscape import compute_surface, surface_key
    from pait.grid.stages import prepare, unit_key
    from pait.grid.structure import structure_of
    from pait.report.fig4 import plot_fig4
    from pait.report.run_folder import check_run_dir, read_results, read_run_config

    if args.grid < 2 or args.chunk < 1:
        raise ConfigError(f"--grid must be at least 2 and --chunk at least 1, got {args.grid} and {args.chunk}")
    if args.grid > MAX_GRID:
        raise ConfigError(f"--grid {args.grid} asks for {args.grid ** 2:,} grid points, each a full evaluation of two "
                          f"tasks (days of compute, and a surface of {2 * 2 * 8 * args.grid ** 2 / 2**30:.1f} GiB); "
                          f"at most {MAX_GRID} per axis")
    run_dir = check_run_dir(args.run_dir)
    results = read_results(run_dir)
    config = config_from_dict(read_run_config(run_dir), where=f"{run_dir / 'config.json'}:")
    if not config.save_weights:
        raise ConfigError(f"{run_dir} was run without save_weights: run the grid with save_weights: true "
                          "to keep the re-trained weights the loss surface needs")
    if not structure_of(config.structure).keeps_shapes:
        raise ConfigError(f"{run_dir} was run with structure: {config.structure}; loss surfaces need weight-pruned "
                          "units (structure: weights), whose re-trained weights keep the unpruned shapes")
    import_plugins(config)  # the run's encoders, suites or scores may come from them
    unit = select_unit(results, args)
    targets = [t for t in dict.fromkeys(results.target) if t != unit.source]
    if args.transfer is not None and args.transfer not in targets:
        raise ConfigError(f"--transfer {args.transfer!r} is not a transfer task of this unit; "
                          f"its transfer tasks: {', '.join(targets) or 'none'}")
    if not targets:
        raise ConfigError(f"the run {run_dir} has no transfer task besides the source {unit.source}")
    transfer = args.transfer or targets[0]
    encoder_config = next(e for e in config.encoders if e.name == unit.encoder)
    ctx = prepare(config, encoder_config, StageStore(run_dir.parent / "stages"), int(unit.seed))
    key = surface_key(unit_key(ctx, unit.source, unit.score, float(unit.sparsity), unit.recovery),
                      [unit.source, transfer], args.grid)
    path = run_dir / "landscape" / f"{key}.npz"
    surface = compute_surface(ctx, unit.source, unit.score, float(unit.sparsity), transfer, args.grid, path,
                              chunk=args.chunk, on_row=lambda r, n: print(f"grid row {r + 1}/{n}", flush=True),
                              recovery=unit.recovery)
    figure = plot_fig4(surface, run_dir / "figures" / f"fig4_{key}.png")
    print(f"surface: {path}\nfigure: {figure}")
    return 0
