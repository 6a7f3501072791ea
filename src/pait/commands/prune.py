"""Prune one pretrained encoder on one folder of images (class sub-folders) and write a pruned
checkpoint: ``pruned.safetensors`` (the full state dict of the stock module), ``mask.safetensors``
(bool, True = kept) and ``report.json`` / ``report.md`` (accuracy before/after on held-out images of
the folder, parameters, per-layer density, storage sizes). The ``--out`` folder is replaced whole, never
mixed with the files of an earlier run (``pait.outputs.replace_folder``).

Load the result without pait: ``model.load_state_dict(safetensors.torch.load_file("DIR/pruned.safetensors"))``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pait.config import key_values
from pait.prune.options import RECOVERIES, STRUCTURED_RECOVERIES, STRUCTURES, PruneOptions

HELP = "prune one encoder on a folder of images; write the pruned checkpoint, its mask and a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pait prune``."""
    d = PruneOptions("")
    parser.add_argument("--encoder", required=True, help="registered encoder name")
    parser.add_argument("--weights", help="checkpoint file, for encoders that need one")
    parser.add_argument("--input-size", type=int, help="input resolution (default: the encoder's)")
    parser.add_argument("--data", type=Path, required=True, help="folder of class sub-folders of images")
    parser.add_argument("--score", default=d.score, help="pruning score (`pait score --help`; an unknown name lists them)")
    parser.add_argument("--score-option", action="append", default=[], metavar="KEY=VALUE",
                        help="option of the score function, e.g. damping=1e-2 for kfac (repeatable)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--sparsity", type=float, help=f"global fraction of prunable weights removed (default {d.sparsity})")
    target.add_argument("--nm", help="N:M semi-structured pattern instead of a global sparsity, e.g. 2:4")
    parser.add_argument("--structure", choices=STRUCTURES,
                        help="structured pruning: remove conv channels / ViT attention heads and MLP neurons; "
                             "writes a physically smaller module (pruned.safetensors + structure.json)")
    parser.add_argument("--ratio", type=float,
                        help="with --structure: global fraction of prunable channels (and heads) removed, in [0, 1)")
    parser.add_argument("--round-to", type=int, default=d.round_to, metavar="N",
                        help="with --structure: every pruned layer keeps a multiple of N channels (or all of them; "
                             "rounding up, so fewer channels than --ratio may go); heads are not rounded (default 1)")
    parser.add_argument("--onnx", action="store_true", help="with --structure: also write pruned.onnx (features)")
    parser.add_argument("--recovery", default=None, choices=RECOVERIES,
                        help=f"after pruning: nothing, SGD re-training (masks held), one-shot OBS (K-FAC; the default), "
                             f"BatchNorm re-calibration, sequential layer-wise OBS (mask held, or -adaptive), or "
                             f"bn+sequential; with --structure one of {', '.join(STRUCTURED_RECOVERIES)} (default sgd)")
    parser.add_argument("--retrain-epochs", type=int, default=d.retrain_epochs, help="epochs of sgd recovery")
    parser.add_argument("--lr", type=float, default=d.lr, help="learning rate of sgd recovery")
    parser.add_argument("--calib-per-class", type=int, default=d.calib_per_class)
    parser.add_argument("--eval-per-class", type=int, default=d.eval_per_class)
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the calibration/evaluation split")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    parser.add_argument("--out", type=Path, required=True, help="output directory")


def check_apart(out: Path, data: Path) -> None:
    """Refuse an ``--out`` inside ``--data`` (the next run would read it as a class folder) and a ``--data``
    inside ``--out`` (the output replaces that folder whole)."""
    from pait.errors import ConfigError
    from pait.prune.data import check_outside

    check_outside(out, data, "--out")
    if Path(os.path.realpath(out)) in Path(os.path.realpath(data)).parents:
        raise ConfigError(f"--data {data} lies inside --out {out}, which pait prune replaces whole; "
                          "write the output elsewhere")


def run(args: argparse.Namespace) -> int:
    """Prune, save and report; bad input raises a PaitError (``pait: error: ...``, exit 2) before any work."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pait.errors import ConfigError
    from pait.export import save_pruned
    from pait.outputs import check_output_folder, replace_folder
    from pait.prune.run import prune
    from pait.prune.report import OUTPUT_FILES, write_report

    structured = args.structure is not None or args.ratio is not None
    mixed = "--sparsity" if args.sparsity is not None else "--nm" if args.nm else None
    clash = (f"{mixed} does not combine with --structure/--ratio" if structured and mixed else
             "--onnx does not combine with unstructured pruning; add --structure channels --ratio R"
             if args.onnx and not structured else None)
    if clash:
        raise ConfigError(clash)
    if structured:
        sparsity, recovery = None, args.recovery or "sgd"
    else:
        sparsity = args.sparsity if args.sparsity is not None or args.nm else PruneOptions("").sparsity
        recovery = args.recovery or PruneOptions("").recovery
    options = PruneOptions(args.encoder, args.weights, args.input_size, args.score, sparsity, args.nm, recovery,
                           args.retrain_epochs, args.lr, args.calib_per_class, args.eval_per_class, args.seed,
                           args.batch_size, device=args.device,
                           score_options=key_values(args.score_option, "--score-option"), structure=args.structure,
                           ratio=args.ratio, round_to=args.round_to)
    options.validate()
    check_apart(args.out, args.data)
    # before any work: not a file, not read-only, not full, nothing foreign in it; leftovers of killed runs go
    check_output_folder(args.out, OUTPUT_FILES, "--out folder")
    console = Console(stderr=True)
    # on a terminal the steps show while they run and vanish at the end (or before an error's one line)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as bar:
        steps: list[int] = []

        def on_step(text: str) -> None:
            if steps:
                bar.update(steps[-1], completed=1)
            steps.append(bar.add_task(text, total=1))

        def on_epoch(epoch: int, loss: float) -> None:
            bar.update(steps[-1], description=f"recovery (sgd): epoch {epoch + 1}/{args.retrain_epochs}, loss {loss:.4f}")

        if structured:
            from pait.prune.structured.command import prune_and_save

            report = prune_and_save(options, args.data, args.out, args.onnx, on_step, on_epoch)
        else:
            encoder, mask, report = prune(options, args.data, on_step, on_epoch)
            on_step("writing")
            with replace_folder(args.out, OUTPUT_FILES, "--out folder") as new:  # whole, never mixed with a previous run
                save_pruned(encoder.model, mask, new)
                write_report(new, report)
        bar.update(steps[-1], completed=1)
    if structured:
        size = report["size"]
        console.print(f"held-out accuracy {report['accuracy']['before']:.4f} -> {report['accuracy']['after']:.4f} "
                      f"(refit head {report['accuracy']['after_refit_head']:.4f}); parameters "
                      f"{size['params_before']:,} -> {size['params_after']:,}; MACs {size['macs_before']:,} -> "
                      f"{size['macs_after']:,}; wrote {args.out}")
        return 0
    acc = report["accuracy"]
    console.print(f"held-out accuracy {acc['before']:.4f} -> {acc['after']:.4f} (refit head {acc['after_refit_head']:.4f}); "
                  f"sparsity {report['sparsity']:.4f}; wrote {args.out}")
    return 0
