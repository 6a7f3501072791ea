"""Load a pruned checkpoint written by ``pait prune`` into its stock module and report its accuracy on
the held-out images of a folder, through a ridge head fit on the pruned encoder's features of the
calibration images (the same seeded split as at pruning time unless overridden).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from pait.prune.options import PruneOptions

HELP = "accuracy of a pruned checkpoint (from pait prune) on a folder of images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pait evaluate``."""
    parser.add_argument("--checkpoint", type=Path, required=True, help="output directory of pait prune")
    parser.add_argument("--data", type=Path, required=True, help="folder of class sub-folders of images")
    parser.add_argument("--calib-per-class", type=int, help="default: as at pruning time")
    parser.add_argument("--eval-per-class", type=int, help="default: as at pruning time")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    """Load, check the mask holds, fit the head, evaluate."""
    from rich.console import Console

    from pait.export import load_into, load_mask
    from pait.masks import mask_sparsity
    from pait.device import resolve_device
    from pait.prune.data import accuracy, fit_head, folder_splits
    from pait.prune.run import build_encoder
    from pait.prune.report import read_report

    console = Console(stderr=True)
    try:
        options = PruneOptions(**read_report(args.checkpoint)["options"])
        overrides = {k: v for k, v in (("calib_per_class", args.calib_per_class), ("eval_per_class", args.eval_per_class)) if v}
        options = dataclasses.replace(options, **overrides)
        with console.status("loading the pruned encoder"):
            encoder = build_encoder(options)
            load_into(encoder.model, args.checkpoint)
            mask = load_mask(args.checkpoint)
        params = encoder.prunable_parameters()
        if any(bool(params[n].detach()[~m].any()) for n, m in mask.items()):
            raise ValueError(f"{args.checkpoint}: pruned weights are not zero; the checkpoint does not match its mask")
        device = resolve_device(args.device)
        encoder.model.to(device).eval()
        with console.status("decoding the images and fitting the head"):
            task, calib, evaluation = folder_splits(args.data, encoder, options.calib_per_class, options.eval_per_class,
                                                    options.seed)
            head = fit_head(encoder, calib, task.num_classes, options.batch_size, device)
            acc = accuracy(encoder, head, evaluation, options.batch_size, device)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"pait evaluate: error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    result = {"checkpoint": str(args.checkpoint), "accuracy": acc, "evaluation_images": len(evaluation),
              "sparsity": mask_sparsity(mask), "device": str(device)}
    if args.json:
        print(json.dumps(result))
    else:
        console.print(f"held-out accuracy {acc:.4f} on {len(evaluation)} images; mask sparsity {result['sparsity']:.4f}")
    return 0
