"""Load a pruned checkpoint written by ``pait prune`` into its stock module and report its accuracy on
the held-out images of a folder, through a ridge head fit on the pruned encoder's features of the
calibration images (the same seeded split as at pruning time unless overridden). A structured output
(``--structure channels``: ``structure.json`` + ``pruned.safetensors``) is rebuilt as the smaller module.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from pait.errors import CheckpointError
from pait.prune.options import PruneOptions
from pait.prune.report import REPORT_JSON

RETIRED_OPTIONS = ("damping",)  # the recoveries' damping, fixed at its default (1e-3) in every report
HELP = "accuracy of a pruned checkpoint (from pait prune) on a folder of images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pait evaluate``."""
    parser.add_argument("--checkpoint", type=Path, required=True, help="output directory of pait prune")
    parser.add_argument("--data", type=Path, required=True, help="folder of class sub-folders of images")
    parser.add_argument("--calib-per-class", type=int, help="default: as at pruning time")
    parser.add_argument("--eval-per-class", type=int, help="default: as at pruning time")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` (plain JSON data) has the type ``hint`` of a PruneOptions field."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, h) for h in typing.get_args(hint))
    hint = typing.get_origin(hint) or hint
    if hint is tuple:  # a tuple option is a JSON list
        return isinstance(value, list)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def prune_options(report: dict, checkpoint: Path) -> PruneOptions:
    """The options ``pait prune`` stored in its report; a report that does not hold them (another version's,
    a damaged one) is a CheckpointError naming the first wrong field."""
    where = checkpoint / REPORT_JSON
    options = report.get("options") if isinstance(report, dict) else None
    if isinstance(options, dict):  # options of earlier versions that no flag sets any more
        options = {k: v for k, v in options.items() if k not in RETIRED_OPTIONS}
    hints = typing.get_type_hints(PruneOptions)
    if not isinstance(options, dict) or "encoder" not in options or set(options) - set(hints):
        raise CheckpointError(f"{where} does not hold the options of a pait prune run")
    for key, value in options.items():
        if not _fits(value, hints[key]):
            written = {f.name: f.type for f in dataclasses.fields(PruneOptions)}[key]
            raise CheckpointError(f"{where}: option {key} holds {value!r:.60}, not {written} "
                                  "(written by another version of pait?)")
    return PruneOptions(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})


def run(args: argparse.Namespace) -> int:
    """Load, check the mask holds, fit the head, evaluate."""
    from rich.console import Console

    from pait.config import EncoderConfig
    from pait.device import resolve_device
    from pait.export.checked import load_structured_checked
    from pait.masks import mask_sparsity
    from pait.prune.data import accuracy, check_outside, fit_head, folder_splits
    from pait.prune.report import read_report
    from pait.encoders import build_encoder as build_configured_encoder

    console = Console(stderr=True)
    check_outside(args.checkpoint, args.data, "--checkpoint")
    options = dataclasses.replace(prune_options(read_report(args.checkpoint), args.checkpoint), device=args.device)
    options.validate(where=str(args.checkpoint / REPORT_JSON))  # what the report holds is named by file and key
    overrides = {k: v for k, v in (("calib_per_class", args.calib_per_class), ("eval_per_class", args.eval_per_class))
                 if v is not None}
    options = dataclasses.replace(options, **overrides)
    options.validate()  # and the flags given here by their names
    device = resolve_device(args.device)
    with console.status("loading the pruned encoder"):
        encoder = build_configured_encoder(EncoderConfig(options.encoder, options.weights, options.input_size))
        if options.structure is not None:
            load_structured_checked(encoder.model, args.checkpoint, f"structurally pruned {options.encoder}")
            mask = None
        else:
            mask = _load_unstructured(encoder, options, args.checkpoint)
    encoder.model.to(device).eval()
    with console.status("decoding the images and fitting the head"):
        task, calib, evaluation = folder_splits(args.data, encoder, options.calib_per_class, options.eval_per_class,
                                                options.seed)
        head = fit_head(encoder, calib, task.num_classes, options.batch_size, device)
        acc = accuracy(encoder, head, evaluation, options.batch_size, device)
    result = {"checkpoint": str(args.checkpoint), "accuracy": acc, "evaluation_images": len(evaluation),
              "device": str(device)}
    if mask is None:
        result.update(structure=options.structure, parameters=sum(p.numel() for p in encoder.model.parameters()))
        summary = f"{result['parameters']:,} parameters ({options.structure} pruned)"
    else:
        result["sparsity"] = mask_sparsity(mask)
        summary = f"mask sparsity {result['sparsity']:.4f}"
    if args.json:
        print(json.dumps(result))
    else:
        console.print(f"held-out accuracy {acc:.4f} on {len(evaluation)} images; {summary}")
    return 0


def _load_unstructured(encoder: Any, options: PruneOptions, checkpoint: Path) -> dict:
    """Load ``pruned.safetensors`` into the stock module and check that its weights are zero off the mask."""
    from pait.encoders.checkpoints import load_checked
    from pait.export import MASK_FILE, PRUNED_FILE
    from pait.tensorfiles import read_safetensors

    pruned = checkpoint / PRUNED_FILE
    load_checked(encoder.model, read_safetensors(pruned), pruned, f"pruned {options.encoder}")
    mask = {k: v.bool() for k, v in read_safetensors(checkpoint / MASK_FILE).items()}
    params = encoder.prunable_parameters()
    if set(mask) - set(params) or any(mask[n].shape != params[n].shape for n in set(mask) & set(params)):
        raise CheckpointError(f"{checkpoint / MASK_FILE} does not fit the prunable weights of {options.encoder}")
    if any(bool(params[n].detach()[~m].any()) for n, m in mask.items()):
        raise CheckpointError(f"{pruned}: pruned weights are not zero; the checkpoint does not match its mask")
    return mask
