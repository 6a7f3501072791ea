"""Recovery methods side by side on the embedded demo suite: none / bn / obs / sequential / bn+sequential / sgd.

EfficientNet-Lite0 (real ImageNet weights) at 96 px, 50 calibration + 50 held-out evaluation images
per class, global masks from each score on the source's calibration images, each recovery from the
same unpruned weights. Source accuracy on the source's held-out images; transfer accuracy averaged
over the other tasks, each through its own frozen ridge head fit on the unpruned encoder. SGD: the
demo's schedule (4 epochs, lr 0.01). Rows are written to the JSON after every run, so an
interrupted run keeps what it measured.

    PYTHONPATH=src python bench/recoveries.py [--sources digits-0-4 clothing-a] [--scores kfac magnitude]
        [--sparsity 0.3 0.4 0.5 0.2] [--methods none bn obs sequential bn+sequential sgd]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import torch

from pait.cache import StageStore, write_atomic
from pait.config import EncoderConfig, ExperimentConfig, FinetuneConfig, SuiteConfig
from pait.heads import HeadedModel
from pait.masks import global_mask
from pait.grid.stages import prepare, scores_stage
from pait.prune.recoveries import RecoveryInputs, run_recovery

METHODS = ["none", "bn", "obs", "sequential", "bn+sequential", "sgd"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sources", nargs="+", default=["digits-0-4", "clothing-a"])
    parser.add_argument("--scores", nargs="+", default=["kfac", "magnitude"])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.2])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--cache", type=Path, default=Path("runs/bench-recovery"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/recoveries.json"))
    args = parser.parse_args()
    config = ExperimentConfig(
        name="bench-recovery",
        encoders=(EncoderConfig("efficientnet_lite0", input_size=96),),
        suite=SuiteConfig("embedded", protocol="heldout", calib_per_class=50, eval_per_class=50),
        finetune=FinetuneConfig(epochs=4, lr=0.01, milestones=(3,), batch_size=32),
        score_batch_size=25, device=args.device, precision="fp32",
    )
    ctx = prepare(config, config.encoders[0], StageStore(args.cache))
    result = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "device": args.device, "rows": []}
    for source in args.sources:
        transfer = [t for t in ctx.splits if t != source]
        _add(result, args.out, _row(source, "-", "dense", 0.0, {t: a for t, (a, _) in ctx.unpruned.items()}, transfer, 0.0))
        for score in args.scores:
            scores = scores_stage(ctx, source, score, None)
            for q in args.sparsity:
                mask = global_mask(scores, q)
                for method in args.methods:
                    ctx.reset_weights()
                    model = HeadedModel(ctx.encoder.model, ctx.encoder.feature_fn, ctx.heads[source])
                    start = time.perf_counter()
                    run_recovery(method, RecoveryInputs(model, mask, ctx.splits[source][0], ctx.normalize, ctx.device,
                                                        batch_size=config.score_batch_size, seed=config.seeds[0],
                                                        finetune=config.finetune))
                    seconds = time.perf_counter() - start
                    accs = {t: ctx.evaluate(t)[0] for t in ctx.splits}
                    _add(result, args.out, _row(source, score, method, q, accs, transfer, seconds))
    ctx.reset_weights()
    print(table(result["rows"]))


def _add(result: dict, out: Path, row: dict) -> None:
    result["rows"].append(row)
    print(json.dumps(row), flush=True)
    write_atomic(out, json.dumps(result, indent=1).encode())
    write_atomic(out.with_suffix(".md"), table(result["rows"]).encode())


def _row(source: str, score: str, method: str, sparsity: float, accs: dict[str, float], transfer: list[str],
         seconds: float) -> dict:
    return {"source": source, "score": score, "method": method, "sparsity": sparsity, "source_acc": accs[source],
            "transfer_acc": sum(accs[t] for t in transfer) / len(transfer), "per_task": accs, "seconds": seconds}


def table(rows: list[dict]) -> str:
    """Markdown table: source, score, sparsity, recovery, source and mean transfer accuracy, recovery seconds."""
    lines = ["| source | score | sparsity | recovery | source acc | transfer acc (mean) | recovery s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['source']} | {r['score']} | {r['sparsity']:.2f} | {r['method']} | {r['source_acc']:.3f} "
                     f"| {r['transfer_acc']:.3f} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
