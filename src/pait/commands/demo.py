"""Run the embedded default demo: EfficientNet-Lite0 (real ImageNet weights, installed with its
package) pruned on MNIST / Fashion-MNIST tasks, re-trained, evaluated, charted and reported.

Equivalent to ``pait run demo``; needs no file from the user.
"""

from __future__ import annotations

import argparse
import time

from pait.commands import run as run_command

HELP = "run the embedded default demo (no downloads, a few minutes on a CPU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, as for `pait run`")
    parser.add_argument("--out", default="runs", help="root folder for run outputs and the stage cache")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    args.config, args.no_report, args.executor = "demo", False, "local"
    code = run_command.run(args)
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    return code
