"""The ``pait`` command. Each subcommand is a module in ``pait.commands`` defining
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; they are found automatically."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import pait.commands
from pait.errors import PaitError


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of ``pait.commands``."""
    parser = argparse.ArgumentParser(
        prog="pait",
        description="Prune pretrained vision encoders on one source task; measure source and transfer accuracy.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(pait.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"pait.commands.{info.name}")
        name = info.name.replace("_", "-")
        cmd = sub.add_parser(name, help=module.HELP, description=module.__doc__,
                             formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


MAX_MESSAGE = 1000  # characters of an error line: a value quoted in a message never floods the terminal


def one_line(err: BaseException) -> str:
    """The error's message on one line (a multi-line message is joined with spaces), cut to about
    :data:`MAX_MESSAGE` characters."""
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    return text if len(text) <= MAX_MESSAGE else f"{text[:MAX_MESSAGE]}... ({len(text) - MAX_MESSAGE} more characters)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pait`` console script."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may follow options (`pait run demo --out x a=1`): argparse leaves them over
    overrides = [a for a in extra if "=" in a and not a.startswith("-")]
    if len(overrides) != len(extra) or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if overrides:
        args.overrides = [*args.overrides, *overrides]
    try:
        return int(args._run(args) or 0)
    except PaitError as err:  # bad input: one line, no traceback; anything else is a bug and shows its traceback
        print(f"pait: error: {one_line(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pait: interrupted; finished stages are kept and a rerun resumes", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
