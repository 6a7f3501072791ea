"""One-shot recovery on the embedded demo suite: no recovery vs one-shot OBS (K-FAC) vs SGD re-training.

EfficientNet-Lite0 (real ImageNet weights) at 96 px, source task digits-0-4, 50 calibration + 50
held-out evaluation images per class, K-FAC scores, global masks at 0.2 and 0.4. Source accuracy on
the source's held-out images; transfer accuracy averaged over the other tasks, each through its own
frozen ridge head fit on the unpruned encoder. SGD: the demo's schedule (4 epochs, lr 0.01).

    PYTHONPATH=src python bench/recovery.py [--device cpu] [--out bench/results/recovery.json]
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
from pait.prune.recovery import RECOVERIES, recover


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--source", default="digits-0-4")
    parser.add_argument("--score", default="kfac")
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.2, 0.4])
    parser.add_argument("--cache", type=Path, default=Path("runs/bench-recovery"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/recovery.json"))
    args = parser.parse_args()
    config = ExperimentConfig(
        name="bench-recovery",
        encoders=(EncoderConfig("efficientnet_lite0", input_size=96),),
        suite=SuiteConfig("embedded", protocol="heldout", calib_per_class=50, eval_per_class=50),
        finetune=FinetuneConfig(epochs=4, lr=0.01, milestones=(3,), batch_size=32),
        score_batch_size=25, device=args.device, precision="fp32",
    )
    ctx = prepare(config, config.encoders[0], StageStore(args.cache))
    scores = scores_stage(ctx, args.source, args.score, None)
    transfer = [t for t in ctx.splits if t != args.source]
    rows = [_row("dense", 0.0, {t: acc for t, (acc, _) in ctx.unpruned.items()}, args.source, transfer, 0.0)]
    for q in args.sparsity:
        mask = global_mask(scores, q)
        for method in RECOVERIES:
            ctx.reset_weights()
            model = HeadedModel(ctx.encoder.model, ctx.encoder.feature_fn, ctx.heads[args.source])
            start = time.perf_counter()
            recover(model, mask, method, ctx.splits[args.source][0], ctx.normalize, ctx.device,
                    config.finetune, batch_size=config.score_batch_size, seed=config.seeds[0])
            seconds = time.perf_counter() - start
            rows.append(_row(method, q, {t: ctx.evaluate(t)[0] for t in ctx.splits}, args.source, transfer, seconds))
            print(json.dumps(rows[-1]), flush=True)
    ctx.reset_weights()
    result = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "device": args.device, "source": args.source, "score": args.score,
              "rows": rows}
    write_atomic(args.out, json.dumps(result, indent=1).encode())
    write_atomic(args.out.with_suffix(".md"), table(rows).encode())
    print(table(rows))


def _row(method: str, sparsity: float, accs: dict[str, float], source: str, transfer: list[str], seconds: float) -> dict:
    return {"method": method, "sparsity": sparsity, "source": accs[source],
            "transfer": sum(accs[t] for t in transfer) / len(transfer), "per_task": accs, "seconds": seconds}


def table(rows: list[dict]) -> str:
    """Markdown table: sparsity, recovery, source and mean transfer accuracy, recovery seconds."""
    lines = ["| sparsity | recovery | source acc | transfer acc (mean) | recovery s |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['sparsity']:.2f} | {r['method']} | {r['source']:.3f} | {r['transfer']:.3f} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
