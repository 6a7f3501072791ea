"""Prune one pretrained encoder on one folder of images (class sub-folders) and write a pruned
checkpoint: ``pruned.safetensors`` (the full state dict of the stock module), ``mask.safetensors``
(bool, True = kept) and ``report.json`` / ``report.md`` (accuracy before/after on held-out images of
the folder, parameters, per-layer density, storage sizes).

Load the result without pait: ``model.load_state_dict(safetensors.torch.load_file("DIR/pruned.safetensors"))``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pait.prune_options import RECOVERIES, PruneOptions

HELP = "prune one encoder on a folder of images; write the pruned checkpoint, its mask and a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``pait prune``."""
    d = PruneOptions("")
    parser.add_argument("--encoder", required=True, help="registered encoder name")
    parser.add_argument("--weights", help="checkpoint file, for encoders that need one")
    parser.add_argument("--input-size", type=int, help="input resolution (default: the encoder's)")
    parser.add_argument("--data", type=Path, required=True, help="folder of class sub-folders of images")
    parser.add_argument("--score", default=d.score, help="pruning score (`pait score --help`; an unknown name lists them)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--sparsity", type=float, help=f"global fraction of prunable weights removed (default {d.sparsity})")
    target.add_argument("--nm", help="N:M semi-structured pattern instead of a global sparsity, e.g. 2:4")
    parser.add_argument("--recovery", default=d.recovery, choices=RECOVERIES,
                        help="after pruning: nothing, SGD re-training with masks held, one-shot OBS (K-FAC), BatchNorm "
                             "re-calibration, sequential layer-wise OBS (mask held or adaptive), or bn+sequential")
    parser.add_argument("--retrain-epochs", type=int, default=d.retrain_epochs, help="epochs of sgd recovery")
    parser.add_argument("--lr", type=float, default=d.lr, help="learning rate of sgd recovery")
    parser.add_argument("--calib-per-class", type=int, default=d.calib_per_class)
    parser.add_argument("--eval-per-class", type=int, default=d.eval_per_class)
    parser.add_argument("--seed", type=int, default=d.seed, help="seed of the calibration/evaluation split")
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    parser.add_argument("--out", type=Path, required=True, help="output directory")


def run(args: argparse.Namespace) -> int:
    """Prune, save and report; a clear one-line error for bad input."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from pait.export import save_pruned
    from pait.prune import prune
    from pait.prune_report import write_report

    sparsity = args.sparsity if args.sparsity is not None or args.nm else PruneOptions("").sparsity
    options = PruneOptions(args.encoder, args.weights, args.input_size, args.score, sparsity, args.nm, args.recovery,
                           args.retrain_epochs, args.lr, args.calib_per_class, args.eval_per_class, args.seed,
                           args.batch_size, device=args.device)
    console = Console(stderr=True)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
            steps: list[int] = []

            def on_step(text: str) -> None:
                if steps:
                    bar.update(steps[-1], completed=1)
                steps.append(bar.add_task(text, total=1))

            def on_epoch(epoch: int, loss: float) -> None:
                bar.update(steps[-1], description=f"recovery (sgd): epoch {epoch + 1}/{args.retrain_epochs}, loss {loss:.4f}")

            encoder, mask, report = prune(options, args.data, on_step, on_epoch)
            on_step("writing")
            save_pruned(encoder.model, mask, args.out)
            write_report(args.out, report)
            bar.update(steps[-1], completed=1)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"pait prune: error: {err.args[0] if err.args else err}", file=sys.stderr)
        return 2
    acc = report["accuracy"]
    console.print(f"held-out accuracy {acc['before']:.4f} -> {acc['after']:.4f} (refit head {acc['after_refit_head']:.4f}); "
                  f"sparsity {report['sparsity']:.4f}; wrote {args.out}")
    return 0
