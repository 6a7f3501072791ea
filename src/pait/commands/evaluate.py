"""Load a pruned checkpoint written by ``pait prune`` into its stock module and report its accuracy on
the held-out images of a folder, through a ridge head fit on the pruned encoder's features of the
calibration images (the same seeded split as at pruning time unless overridden).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pait.errors import CheckpointError
from pait.prune.options import PruneOptions
from pait.prune.report import REPORT_JSON

HELP = "accuracy of a pruned checkpoint (from pait prune) on a folder of images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pait evaluate``."""
    parser.add_argument("--checkpoint", type=Path, required=True, help="output directory of pait prune")
    parser.add_argument("--data", type=Path, required=True, help="folder of class sub-folders of images")
    parser.add_argument("--calib-per-class", type=int, help="default: as at pruning time")
    parser.add_argument("--eval-per-class", type=int, help="default: as at pruning time")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def prune_options(report: dict, checkpoint: Path) -> PruneOptions:
    """The options ``pait prune`` stored in its report; a report that does not hold them is a CheckpointError."""
    options = report.get("options") if isinstance(report, dict) else None
    fields = {f.name for f in dataclasses.fields(PruneOptions)}
    if not isinstance(options, dict) or "encoder" not in options or set(options) - fields:
        raise CheckpointError(f"{checkpoint / REPORT_JSON} does not hold the options of a pait prune run")
    return PruneOptions(**options)


def run(args: argparse.Namespace) -> int:
    """Load, check the mask holds, fit the head, evaluate."""
    from rich.console import Console

    from pait.device import resolve_device
    from pait.encoders.checkpoints import load_checked
    from pait.export import MASK_FILE, PRUNED_FILE
    from pait.masks import mask_sparsity
    from pait.prune.data import accuracy, fit_head, folder_splits
    from pait.prune.report import read_report
    from pait.prune.run import build_encoder
    from pait.tensorfiles import read_safetensors

    console = Console(stderr=True)
    options = prune_options(read_report(args.checkpoint), args.checkpoint)
    overrides = {k: v for k, v in (("calib_per_class", args.calib_per_class), ("eval_per_class", args.eval_per_class))
                 if v is not None}
    options = dataclasses.replace(options, **overrides, device=args.device)
    options.validate()
    device = resolve_device(args.device)
    with console.status("loading the pruned encoder"):
        encoder = build_encoder(options)
        pruned = args.checkpoint / PRUNED_FILE
        load_checked(encoder.model, read_safetensors(pruned), pruned, f"pruned {options.encoder}")
        mask = {k: v.bool() for k, v in read_safetensors(args.checkpoint / MASK_FILE).items()}
    params = encoder.prunable_parameters()
    if set(mask) - set(params) or any(mask[n].shape != params[n].shape for n in set(mask) & set(params)):
        raise CheckpointError(f"{args.checkpoint / MASK_FILE} does not fit the prunable weights of {options.encoder}")
    if any(bool(params[n].detach()[~m].any()) for n, m in mask.items()):
        raise CheckpointError(f"{pruned}: pruned weights are not zero; the checkpoint does not match its mask")
    encoder.model.to(device).eval()
    with console.status("decoding the images and fitting the head"):
        task, calib, evaluation = folder_splits(args.data, encoder, options.calib_per_class, options.eval_per_class,
                                                options.seed)
        head = fit_head(encoder, calib, task.num_classes, options.batch_size, device)
        acc = accuracy(encoder, head, evaluation, options.batch_size, device)
    result = {"checkpoint": str(args.checkpoint), "accuracy": acc, "evaluation_images": len(evaluation),
              "sparsity": mask_sparsity(mask), "device": str(device)}
    if args.json:
        print(json.dumps(result))
    else:
        console.print(f"held-out accuracy {acc:.4f} on {len(evaluation)} images; mask sparsity {result['sparsity']:.4f}")
    return 0
