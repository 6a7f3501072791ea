"""Run the embedded default demo: EfficientNet-Lite0 (real ImageNet weights, installed with its
package) pruned on MNIST / Fashion-MNIST tasks, re-trained, evaluated, charted and reported.

Equivalent to ``pait run demo``; needs no file from the user. Where a data source is missing (no
Fashion-MNIST without apt-get), the demo says so and uses the configured source tasks that exist.
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


def available_sources(configured: list[str], tasks: list[str]) -> list[str]:
    """The configured source tasks the suite has, or its first task when it has none of them."""
    return [s for s in configured if s in tasks] or tasks[:1]


def run(args: argparse.Namespace) -> int:
    from pait.config import load_config
    from pait.configs import config_path
    from pait.grid.stages import load_tasks
    from pait.grid.validation import validate_config

    start = time.perf_counter()
    config = load_config(config_path("demo"), args.overrides)
    validate_config(config)  # bad overrides fail before the suite is read
    tasks = [t.name for t in load_tasks(config.suite)]
    sources = available_sources(list(config.sources or tasks), tasks)
    if config.sources is not None and sources != list(config.sources):
        print(f"pait demo: source task(s) {', '.join(sorted(set(config.sources) - set(sources)))} missing from this "
              f"machine's suite; using {', '.join(sources)}")
        args.overrides = [*args.overrides, f"sources={sources}"]
    args.config, args.no_report, args.executor = "demo", False, "local"
    code = run_command.run(args)
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    return code
