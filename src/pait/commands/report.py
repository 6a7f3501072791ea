"""Redraw every figure and rewrite report.md and report.html of a finished run, from its results table
and saved stage outputs only (nothing is recomputed)."""

from __future__ import annotations

import argparse

HELP = "figures and the Markdown/HTML report of a finished run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run directory (OUT/NAME, holding results.parquet)")


def run(args: argparse.Namespace) -> int:
    from pait.cache import WRITE_ERRNOS
    from pait.errors import OutputError
    from pait.outputs import check_writable_folder
    from pait.report import build_report
    from pait.report.run_folder import check_run_dir

    run_dir = check_run_dir(args.run_dir)
    check_writable_folder(run_dir, "run folder")  # the figures and the report are written into it
    try:
        path = build_report(run_dir)
    except OSError as err:  # the storage filled up or turned read-only while drawing
        if err.errno not in WRITE_ERRNOS:
            raise
        raise OutputError(f"cannot write the report into {err.filename or run_dir}: {err.strerror or err}") from None
    print(f"report: {path}\nhtml: {path.with_suffix('.html')}")
    return 0
