"""Run an experiment grid from a YAML config: encoders x scores x sparsities x source tasks.

Every stage is cached under a hash of its configuration; rerunning skips finished stages, and a
killed run resumes where it stopped. Results go to OUT/NAME/results.parquet, then the report.
"""

from __future__ import annotations

import argparse

from pait.config import load_config
from pait.configs import config_path

HELP = "run an experiment grid from a config (YAML path or shipped name)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="YAML config file, or a shipped config name such as 'demo'")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. finetune.epochs=2 sparsities=[0.5]")
    parser.add_argument("--out", default="runs", help="root folder for run outputs and the stage cache")
    parser.add_argument("--no-report", action="store_true", help="skip writing figures and the report")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    ray = parser.add_argument_group("ray executor", "run units as Ray tasks (see README: Ray clusters and SLURM)")
    ray.add_argument("--executor", choices=("local", "ray"), default="local", help="where units run")
    ray.add_argument("--address", default=None,
                     help="Ray cluster to join: 'auto' or ray://HOST:PORT; default: start a local Ray")
    ray.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    ray.add_argument("--gpus-per-unit", type=float, default=None,
                     help="GPU share of each unit, e.g. 0.25 packs four on a GPU (default: 1 if GPUs, else 0)")
    ray.add_argument("--cpus-per-unit", type=float, default=1.0, help="CPU share of each unit")
    ray.add_argument("--retries", type=int, default=2, help="retries of a failing unit before it is reported")


def run(args: argparse.Namespace) -> int:
    """Run the grid; a bad config, name or input file is reported as one ``pait: error:`` line, exit 2."""
    from pait.executors import run_grid
    from pait.grid.plan import run_dir
    from pait.report import build_report

    config = load_config(config_path(args.config), args.overrides)
    options = {}
    if args.executor == "ray":
        options = {"address": args.address, "num_cpus": args.num_cpus, "gpus_per_unit": args.gpus_per_unit,
                   "cpus_per_unit": args.cpus_per_unit, "retries": args.retries}
    run_grid(config, args.out, show_progress=not args.quiet, executor=args.executor, **options)
    if not args.no_report:
        print(f"report: {build_report(run_dir(config, args.out))}")
    return 0
