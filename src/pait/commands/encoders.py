"""List the registered encoders: architecture, pretraining, feature size, prunable parameter count and
where their weights come from. With ``--check NAME --weights PATH`` load a checkpoint file into an
encoder and report whether it fits (the same reader every command uses)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

HELP = "list the encoders (or check a weights file against one)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``pait encoders``."""
    parser.add_argument("--no-count", action="store_true", help="skip building models to count parameters")
    parser.add_argument("--check", metavar="NAME", help="load --weights into encoder NAME and report")
    parser.add_argument("--weights", metavar="PATH", help="weights file for --check ('random' for random init)")
    parser.add_argument("--trust-torchscript", action="store_true",
                        help="allow reading a TorchScript archive (it runs code from the file)")


def shape_of(name: str) -> tuple[int, int]:
    """Feature size and prunable parameter count, from a random model built on the meta device."""
    import torch

    from pait.encoders import RANDOM, load_encoder

    with torch.device("meta"):
        encoder = load_encoder(name, weights=RANDOM)
    return encoder.feature_dim, sum(p.numel() for p in encoder.prunable_parameters().values())


def check(args: argparse.Namespace, console: Console) -> int:
    """Load ``args.weights`` into ``args.check``: 0 when it fits; a file that does not fit raises a
    CheckpointError naming it and what is wrong (``pait: error: ...``, exit 2)."""
    from pait.encoders import load_encoder

    encoder = load_encoder(args.check, weights=args.weights, trust_torchscript=args.trust_torchscript)
    prunable = sum(p.numel() for p in encoder.prunable_parameters().values())
    console.print(f"{encoder.name}: {encoder.info.get('layout', '')} read from {encoder.info.get('weights')}; "
                  f"features {encoder.feature_dim}-d, {prunable:,} prunable weights")
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the table of encoders, or check one weights file."""
    from rich.console import Console
    from rich.table import Table

    from pait.encoders import ENCODERS

    console = Console()
    if args.check:
        return check(args, console)
    table = Table(title="pait encoders")
    for column in ("name", "architecture", "pretraining", "features", "prunable", "weights"):
        table.add_column(column, overflow="fold")
    for name in ENCODERS.names():
        info = ENCODERS.metadata(name)
        dim, prunable = ("", "") if args.no_count else (str(x) for x in shape_of(name))
        table.add_row(name, info["architecture"], info["pretraining"], dim,
                      prunable and f"{int(prunable):,}", info["weights"])
    for family in ENCODERS.families():
        info = ENCODERS.metadata(family)
        table.add_row(family, info["description"], "", "", "", info["weights"])
    console.print(table)
    return 0
