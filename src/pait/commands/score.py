"""Compute one pruning score for one encoder on one source task's calibration images, and save the
scores and the exact global masks at the requested sparsities (safetensors, written atomically).

Outputs in ``--out``: ``scores.safetensors`` (one tensor per prunable weight, keyed by the encoder's
parameter names; for a score computed once per sparsity, ``synflow`` and ``px``,
``scores-<sparsity>.safetensors``) and ``mask-<sparsity>.safetensors`` (uint8, 1 = kept), plus a
per-layer density table on screen.
Decoded images, ridge heads and scores are cached in the same stage cache as ``pait run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pait.config import PAPER_SPARSITIES, EncoderConfig, ExperimentConfig, SuiteConfig, key_values
from pait.errors import ConfigError

HELP = "compute a pruning score on a source task and save scores and masks"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pait score``."""
    parser.add_argument("--encoder", required=True, help="registered encoder name (see `pait encoders`)")
    parser.add_argument("--weights", default=None, help="checkpoint file of the encoder")
    parser.add_argument("--input-size", type=int, default=None, help="input resolution (default: the encoder's)")
    parser.add_argument("--suite", default="embedded", help="task suite of the source task")
    parser.add_argument("--suite-option", action="append", default=[], metavar="KEY=VALUE",
                        help="suite option, e.g. root=/data/imagenet/val (repeatable)")
    parser.add_argument("--protocol", default="heldout", choices=("paper", "heldout", "style-disjoint"))
    parser.add_argument("--calib-per-class", type=int, default=50, help="calibration images per class")
    parser.add_argument("--eval-per-class", type=int, default=50, help="held-out images per class (heldout protocol)")
    parser.add_argument("--task", required=True, help="source task within the suite")
    parser.add_argument("--score", required=True, help="score name (magnitude, fisher_diag, kfac, snip, ...)")
    parser.add_argument("--score-option", action="append", default=[], metavar="KEY=VALUE",
                        help="option of the score function, e.g. damping=1e-2 for kfac (repeatable)")
    parser.add_argument("--sparsity", type=float, nargs="+", default=list(PAPER_SPARSITIES), help="fractions in [0, 1)")
    parser.add_argument("--min-density", type=float, default=0.0, help="per-layer floor of kept weights")
    parser.add_argument("--batch-size", type=int, default=32, help="images per scoring batch")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--plugin", action="append", default=[], help="module to import first (registers names)")
    parser.add_argument("--cache", type=Path, default=Path("runs"), help="root of the stage cache")
    parser.add_argument("--out", type=Path, required=True, help="output directory")


def score_config(args: argparse.Namespace) -> ExperimentConfig:
    """The one-unit experiment config that ``pait score`` evaluates."""
    options = key_values(args.suite_option, "--suite-option")
    return ExperimentConfig(
        name="score",
        encoders=(EncoderConfig(args.encoder, args.weights, args.input_size),),
        suite=SuiteConfig(name=args.suite, options=options, protocol=args.protocol,
                          calib_per_class=args.calib_per_class, eval_per_class=args.eval_per_class),
        scores=(args.score,), sparsities=tuple(args.sparsity), sources=(args.task,),
        score_batch_size=args.batch_size, device=args.device, plugins=tuple(args.plugin),
        score_options={args.score: key_values(args.score_option, "--score-option")} if args.score_option else {},
    )


def run(args: argparse.Namespace) -> int:
    """Load the encoder and the source calibration data (cached), score, and write the files."""
    import torch
    from rich.console import Console

    from pait.cache import StageStore
    from pait.grid.plan import expand, import_plugins
    from pait.export import save_tensors
    from pait.masks import density_report, density_table, global_mask
    from pait.grid.stages import load_tasks, prepare, score_is_per_sparsity, scores_stage
    from pait.grid.validation import check_encoders, validate_config
    from pait.outputs import check_writable_folder

    config = score_config(args)
    import_plugins(config)
    validate_config(config)
    if not 0.0 <= args.min_density <= 1.0:
        raise ConfigError(f"--min-density must lie in [0, 1], got {args.min_density}")
    check_writable_folder(args.out, "--out folder")
    check_writable_folder(args.cache, "--cache folder")
    check_encoders(config)
    expand(config, [t.name for t in load_tasks(config.suite)])  # the task must exist
    ctx = prepare(config, config.encoders[0], StageStore(args.cache / "stages"))
    per_sparsity = score_is_per_sparsity(args.score)
    mask = {}
    for q in args.sparsity:
        scores = scores_stage(ctx, args.task, args.score, q if per_sparsity else None)
        if per_sparsity or q == args.sparsity[0]:
            save_tensors(scores, args.out / (f"scores-{q:.4f}.safetensors" if per_sparsity else "scores.safetensors"))
        mask = global_mask(scores, q, min_density=args.min_density)
        save_tensors({k: v.to(torch.uint8) for k, v in mask.items()}, args.out / f"mask-{q:.4f}.safetensors")
    Console().print(density_table(density_report(mask)))
    print(f"pait score: wrote {args.score} scores and {len(args.sparsity)} mask(s) to {args.out}")
    return 0
