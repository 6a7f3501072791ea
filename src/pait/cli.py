"""The ``pait`` command. Each subcommand is a module in ``pait.commands`` defining
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; they are found automatically."""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import re
import sys
import warnings

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


MAX_MESSAGE = 600  # characters of an error line; a longer message keeps its head and tail around an ellipsis
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")  # no terminal escapes from a file name into the line


def one_line(err: BaseException | str, limit: int = MAX_MESSAGE) -> str:
    """The error's message on one line (a multi-line message is joined with spaces, control characters
    escaped, undecodable bytes of file names as ``\\udcXX``), at most ``limit`` characters: a longer one
    keeps its start and end around a marker of the cut."""
    text = str(err)
    total = len(text)
    if total > 4 * limit:  # cut first: a message may be gigabytes long
        text = text[: 2 * limit] + "\n" + text[-2 * limit:]
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text) or type(err).__name__
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")  # a non-UTF-8 file name prints on any stream
    if len(text) <= limit:
        return text
    tail = limit // 5
    marker = f" [... cut: the message has {total:,} characters ...] "
    return text[: limit - tail - len(marker)] + marker + text[-tail:]


class _Held(logging.Handler):
    """Holds the records of pait's loggers during a command (shown after it, like held warnings)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _show(caught: list[warnings.WarningMessage], held: _Held) -> None:
    """The log records and warnings a command raised, each once, one line each, after the command."""
    seen = set()
    lines = [f"pait: warning: {one_line(r.getMessage())}" for r in held.records]
    lines += [f"pait: warning: {one_line(str(w.message))} ({w.category.__name__}, {w.filename}:{w.lineno})"
              for w in caught]
    for line in lines:
        if line not in seen:
            seen.add(line)
            print(line, file=sys.stderr)


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
    # library warnings and pait's log records are held during the command: after bad input stderr holds the
    # one error line only, after anything else (success, a bug's traceback, an interruption) they follow,
    # one line each (a handler on the "pait" logger also keeps Python's last-resort handler from printing them)
    held = _Held()
    logger = logging.getLogger("pait")
    logger.addHandler(held)
    try:
        with warnings.catch_warnings(record=True) as caught:  # the filters in force (-W, PYTHONWARNINGS) still apply
            try:
                code = int(args._run(args) or 0)
            except PaitError as err:  # bad input: one line, no traceback; anything else is a bug: its traceback
                print(f"pait: error: {one_line(err)}", file=sys.stderr)
                return 2
            except KeyboardInterrupt:
                _show(caught, held)
                print("pait: interrupted; finished stages are kept and a rerun resumes", file=sys.stderr)
                return 130
            except BaseException:
                _show(caught, held)
                raise
    finally:
        logger.removeHandler(held)
    _show(caught, held)
    return code


if __name__ == "__main__":
    sys.exit(main())
