"""Redraw every figure and rewrite report.md and report.html of a finished run, from its results table
and saved stage outputs only (nothing is recomputed)."""

from __future__ import annotations

import argparse

HELP = "figures and the Markdown/HTML report of a finished run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run directory (OUT/NAME, holding results.parquet)")


def run(args: argparse.Namespace) -> int:
    from pait.report import build_report

    path = build_report(args.run_dir)
    print(f"report: {path}\nhtml: {path.with_suffix('.html')}")
    return 0
