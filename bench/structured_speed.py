"""Structured pruning on a CPU: latency, size and accuracy of EfficientNet-Lite0 (96 px) at several channel ratios.

One run, two parts:

1. Accuracy. Embedded suite, held-out protocol (``--calib`` calibration + ``--eval`` evaluation images
   per class, split seed 0), source ``digits-0-4``. For each group score (pait's ``magnitude``,
   ``fisher_diag``, ``kfac`` summed per group; Torch-Pruning's ``taylor``, ``hessian``) computed once on
   the source calibration images of the unpruned encoder, and each ratio: prune a copy, then measure
   with no recovery, after BatchNorm re-estimation (``bn``) and, at ``--sgd-ratios``, after ``bn`` plus
   SGD re-training (``bn+sgd``: ``--epochs`` epochs, lr 0.01, x0.1 for the last quarter, batch 32).
   Accuracy through each task's frozen ridge head fit on the unpruned encoder; transfer = mean over
   the other three tasks.
   With ``--round-to 1 8`` every ratio is pruned twice: any width, and each channel group keeping a
   multiple of 8 channels (variant ``kfac@R/8``). With ``--normalized`` pait's scores are also ranked
   after dividing each group's unit scores by their mean (``kfac/mean``, as Torch-Pruning normalises).
2. Speed. The module pruned by each of ``--speed-scores`` (default ``kfac``; ``kfac/mean`` names the
   normalised ranking) at each ratio and rounding vs the dense one, all in one interleaved run once the
   last of those scores is done: batch 1 and batch 32, PyTorch eager and ONNX Runtime (CPU provider),
   ``--threads`` threads each; median per variant; plus parameters and MACs (Torch-Pruning's counter).

    PYTHONPATH=src python bench/structured_speed.py [--ratios 0.1 0.25 0.4] [--out bench/results/structured_speed.json]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import onnxruntime as ort
import torch
from torch import nn

from pait.cache import StageStore, write_atomic
from pait.config import EncoderConfig, ExperimentConfig, FinetuneConfig, SuiteConfig
from pait.export.speed import forward_fn, interleaved, paired_speedup, torch_threads
from pait.grid.stages import prepare
from pait.heads import HeadedModel, SplitBatches
from pait.prune.structured.groups import build_graph, find_groups, remove_units
from pait.prune.structured.prune import size
from pait.prune.bn_recalibration import recalibrate_batchnorm
from pait.prune.structured.scores import GROUP_SCORES, PAIT_SCORES, group_scores, normalized_by_group_mean
from pait.prune.structured.selection import choose_removals, removed_fraction
from pait.train.finetune import MaskHolder, finetune


def prune_copy(dense: nn.Module, example: torch.Tensor, heads: tuple[str, ...], scores: list[torch.Tensor],
               ratio: float, round_to: int = 1) -> tuple[nn.Module, dict[str, float]]:
    """A pruned copy of ``dense`` at ``ratio`` by ``scores`` (aligned with the groups of ``dense``), each channel
    group keeping a multiple of ``round_to`` channels (or all)."""
    model = copy.deepcopy(dense)
    graph = build_graph(model, example)
    groups = find_groups(model, graph, heads)
    removed = choose_removals(groups, scores, ratio, round_to=round_to)
    remove_units(model, graph, groups, removed)
    return model.eval(), removed_fraction(groups, removed)


def accuracies(ctx, model: nn.Module) -> dict[str, float]:
    dense, ctx.encoder.model = ctx.encoder.model, model
    try:
        return {t: ctx.evaluate(t)[0] for t in ctx.splits}
    finally:
        ctx.encoder.model = dense


def speed(variants: dict[str, nn.Module], size_px: int, threads: int, repeats: int) -> list[dict]:
    """Median seconds per forward of every variant, eager and ONNX Runtime, batch 1 and 32, interleaved."""
    runs, inner = {}, {}
    with tempfile.TemporaryDirectory() as tmp, torch_threads(threads):
        for name, model in variants.items():
            for batch in (1, 32):
                for runtime, label in (("torch", "eager"), ("onnxruntime", "onnxruntime")):
                    runs[(name, label, batch)] = forward_fn(model, runtime, threads, batch, size_px, tmp)
                    inner[(name, label, batch)] = 20 if batch == 1 else 3
        times = interleaved(runs, repeats, inner)
    return [{"variant": k[0], "runtime": k[1], "batch": k[2], "median_s": statistics.median(v), "repeats": v}
            for k, v in times.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="digits-0-4")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.1, 0.25, 0.4])
    parser.add_argument("--sgd-ratios", type=float, nargs="*", default=[0.25])
    parser.add_argument("--scores", nargs="+", default=["kfac", *[s for s in GROUP_SCORES if s != "kfac"]])
    parser.add_argument("--calib", type=int, default=50)
    parser.add_argument("--eval", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--round-to", type=int, nargs="+", default=[1],
                        help="prune every ratio once per value: channel groups keep a multiple of it (1: any width); "
                             "bn+sgd re-training runs for the first value only")
    parser.add_argument("--normalized", action="store_true",
                        help="also rank pait's group scores divided by each group's mean (score/mean, no recovery)")
    parser.add_argument("--speed-scores", nargs="+", default=["kfac"],
                        help="time the modules pruned by these scores (``kfac/mean``: the normalised ranking)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cache", type=Path, default=Path("runs/bench-structured"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/structured_speed.json"))
    args = parser.parse_args()
    if min(args.round_to) < 1:
        parser.error(f"--round-to values must be at least 1, got {args.round_to}")
    for label in args.speed_scores:
        base, normalized = label.removesuffix("/mean"), label.endswith("/mean")
        if base not in args.scores:
            parser.error(f"--speed-scores {label!r}: {base!r} is not among --scores {args.scores}")
        if normalized and not (args.normalized and base in PAIT_SCORES):
            parser.error(f"--speed-scores {label!r} needs --normalized and one of pait's scores {list(PAIT_SCORES)}")
    timed_scores = [s for s in args.scores if s in args.speed_scores or f"{s}/mean" in args.speed_scores]
    torch.set_num_threads(args.threads)
    config = ExperimentConfig(
        name="bench-structured",
        encoders=(EncoderConfig("efficientnet_lite0", input_size=96),),
        suite=SuiteConfig("embedded", protocol="heldout", calib_per_class=args.calib, eval_per_class=args.eval),
        finetune=FinetuneConfig(epochs=args.epochs, lr=0.01, milestones=(max(1, 3 * args.epochs // 4),), batch_size=32),
        score_batch_size=25, device="cpu", precision="fp32",
    )
    ctx = prepare(config, config.encoders[0], StageStore(args.cache))
    dense = ctx.encoder.model.eval()
    px = ctx.encoder.preprocess.input_size
    heads = ctx.encoder.head_prefixes
    transfer = [t for t in ctx.splits if t != args.source]
    batches = list(SplitBatches(ctx.splits[args.source][0], ctx.normalize, ctx.config.score_batch_size, ctx.device))
    example = batches[0][0][:1]

    def row(score, ratio, recovery, accs, seconds, fraction, model, round_to=1):
        macs, params = size(model, px, torch.device("cpu"))
        r = {"score": score, "ratio": ratio, "round_to": round_to, "recovery": recovery, "source": accs[args.source],
             "transfer": sum(accs[t] for t in transfer) / len(transfer), "per_task": accs, "seconds": seconds,
             "removed_fraction": fraction, "macs": macs, "params": params}
        print(json.dumps(r), flush=True)
        return r

    rows = [row("dense", 0.0, "-", {t: a for t, (a, _) in ctx.unpruned.items()}, 0.0, {}, dense)]
    speed_models = {"dense": dense}
    timings: list[dict] = []
    result = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
              "onnxruntime": ort.__version__, "args": {k: str(v) for k, v in vars(args).items()},
              "rows": rows, "speed": timings}

    def keep_for_speed(label: str, ratio: float, round_to: int, pruned: nn.Module) -> None:
        """Keep a copy to time; before bn, as a variant's speed does not depend on its statistics."""
        if label in args.speed_scores:
            speed_models[f"{label}@{ratio}" + (f"/{round_to}" if round_to > 1 else "")] = copy.deepcopy(pruned)

    def save() -> None:
        result["loadavg"] = os.getloadavg()
        write_atomic(args.out, json.dumps(result, indent=1).encode())

    for score in args.scores:
        model = HeadedModel(dense, ctx.encoder.feature_fn, ctx.heads[args.source])
        graph = build_graph(dense, example)
        groups = find_groups(dense, graph, heads)
        start = time.perf_counter()
        scores = group_scores(score, model, graph, groups, batches, ctx.encoder.prunable_parameters())
        score_seconds = time.perf_counter() - start
        del graph
        for ratio, round_to in [(r, n) for r in args.ratios for n in args.round_to]:
            if args.normalized and score in PAIT_SCORES:  # the same scores ranked after dividing by the group mean
                pruned, fraction = prune_copy(dense, example, heads, normalized_by_group_mean(scores), ratio, round_to)
                rows.append(row(f"{score}/mean", ratio, "none", accuracies(ctx, pruned), score_seconds, fraction,
                                pruned, round_to))
                keep_for_speed(f"{score}/mean", ratio, round_to, pruned)
            pruned, fraction = prune_copy(dense, example, heads, scores, ratio, round_to)
            rows.append(row(score, ratio, "none", accuracies(ctx, pruned), score_seconds, fraction, pruned, round_to))
            keep_for_speed(score, ratio, round_to, pruned)
            start = time.perf_counter()
            recalibrate_batchnorm(pruned, batches)
            rows.append(row(score, ratio, "bn", accuracies(ctx, pruned), time.perf_counter() - start, fraction, pruned,
                            round_to))
            if ratio in args.sgd_ratios and round_to == args.round_to[0]:
                start = time.perf_counter()
                headed = HeadedModel(pruned, ctx.encoder.feature_fn, ctx.heads[args.source])
                finetune(headed, ctx.splits[args.source][0], MaskHolder({}, {}), config.finetune, ctx.normalize,
                         ctx.device, seed=config.seeds[0])
                rows.append(row(score, ratio, "bn+sgd", accuracies(ctx, pruned.eval()), time.perf_counter() - start,
                                fraction, pruned, round_to))
            save()
        if score == timed_scores[-1]:  # all variants in one interleaved run, before the remaining scores
            timings += speed(speed_models, px, args.threads, args.repeats)
            print(tables([], timings), flush=True)
            save()
    save()
    write_atomic(args.out.with_suffix(".md"), tables(rows, timings).encode())
    print(tables(rows, timings))


def tables(rows: list[dict], timings: list[dict]) -> str:
    """Markdown: accuracy per score/ratio/recovery, then latency per variant with speedups vs dense."""
    lines = ["| score | ratio | round to | recovery | source acc | transfer acc (mean) | params | MMACs |",
             "|---|---|---|---|---|---|---|---|"]
    lines = lines if rows else []
    lines += [f"| {r['score']} | {r['ratio']:.2f} | {r.get('round_to', 1)} | {r['recovery']} | {r['source']:.3f} | "
              f"{r['transfer']:.3f} | "
              f"{r['params']:,} | {r['macs'] / 1e6:.1f} |" for r in rows]
    if not timings:
        return "\n".join(lines) + "\n"
    med = {(t["variant"], t["runtime"], t["batch"]): t["median_s"] for t in timings}
    variants = list(dict.fromkeys(t["variant"] for t in timings))
    lines += ["", "| variant | eager b1 ms | ORT b1 ms | eager b32 ms | ORT b32 ms | ORT b1 speedup | ORT b32 speedup "
              "| ORT b1 paired [min, max] |", "|---|---|---|---|---|---|---|---|"]
    for v in variants:
        cells = [f"{med[(v, rt, b)] * 1e3:.2f}" for b in (1, 32) for rt in ("eager", "onnxruntime")]
        ups = [f"{med[('dense', 'onnxruntime', b)] / med[(v, 'onnxruntime', b)]:.2f}x" for b in (1, 32)]
        low, mid, high = paired_speedup_of(timings, v)
        lines.append(f"| {v} | " + " | ".join(cells + ups) + f" | {mid:.2f}x [{low:.2f}, {high:.2f}] |")
    return "\n".join(lines) + "\n"


def paired_speedup_of(timings: list[dict], variant: str, runtime: str = "onnxruntime", batch: int = 1) -> tuple[float, ...]:
    """Min, median and max over repeats of dense / variant time, each repeat's pair measured back to back."""
    reps = {t["variant"]: t["repeats"] for t in timings if t["runtime"] == runtime and t["batch"] == batch}
    return paired_speedup(reps["dense"], reps[variant])


if __name__ == "__main__":
    main()
