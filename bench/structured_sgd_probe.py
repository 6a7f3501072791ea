"""Why ``bn+sgd`` after channel surgery ends near chance: the same steps on the dense encoder as a control.

EfficientNet-Lite0 (96 px), embedded suite as in ``bench/structured_speed.py`` (held-out, ``--calib`` +
``--eval`` images per class, split seed 0, source ``digits-0-4``). For the dense encoder and for a copy
pruned by Torch-Pruning's ``taylor`` group score at ``--ratio`` (widths rounded to ``--round-to``): with
and without BatchNorm re-estimation on the source calibration images, then SGD through the source's
frozen ridge head at each ``--lrs`` (``--epochs`` epochs, batch 32, BN frozen). Rows: the training loss
per epoch and the source / mean transfer accuracy before and after, as JSON lines and in ``--out``.

    PYTHONPATH=src python bench/structured_sgd_probe.py [--out bench/results/structured_sgd_probe.json]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
from pathlib import Path

import torch
from structured_speed import accuracies, prune_copy
from torch import nn

from pait.cache import StageStore, write_atomic
from pait.config import EncoderConfig, ExperimentConfig, FinetuneConfig, SuiteConfig
from pait.grid.stages import prepare
from pait.heads import HeadedModel, SplitBatches
from pait.prune.structured.groups import build_graph, find_groups
from pait.prune.bn_recalibration import recalibrate_batchnorm
from pait.prune.structured.scores import group_scores
from pait.train.finetune import MaskHolder, finetune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="digits-0-4")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.001])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--calib", type=int, default=30)
    parser.add_argument("--eval", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("runs/bench-structured"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/structured_sgd_probe.json"))
    args = parser.parse_args()
    if not 0 <= args.ratio < 1:
        parser.error(f"--ratio must lie in [0, 1), got {args.ratio}")
    if args.round_to < 1 or args.epochs < 1 or min(args.lrs) <= 0:
        parser.error(f"--round-to and --epochs must be at least 1 and --lrs positive, got {args.round_to}, "
                     f"{args.epochs}, {args.lrs}")
    torch.set_num_threads(args.threads)
    schedule = FinetuneConfig(epochs=args.epochs, lr=args.lrs[0], milestones=(max(1, 3 * args.epochs // 4),),
                              batch_size=32)
    config = ExperimentConfig(
        name="bench-structured", encoders=(EncoderConfig("efficientnet_lite0", input_size=96),),
        suite=SuiteConfig("embedded", protocol="heldout", calib_per_class=args.calib, eval_per_class=args.eval),
        finetune=schedule, score_batch_size=25, device="cpu", precision="fp32")
    ctx = prepare(config, config.encoders[0], StageStore(args.cache))
    dense = ctx.encoder.model.eval()
    batches = list(SplitBatches(ctx.splits[args.source][0], ctx.normalize, config.score_batch_size, ctx.device))
    example = batches[0][0][:1]
    heads = ctx.encoder.head_prefixes
    graph = build_graph(dense, example)
    groups = find_groups(dense, graph, heads)
    scores = group_scores("taylor", HeadedModel(dense, ctx.encoder.feature_fn, ctx.heads[args.source]), graph,
                          groups, batches, ctx.encoder.prunable_parameters())
    del graph
    pruned, _ = prune_copy(dense, example, heads, scores, args.ratio, args.round_to)

    def summary(accs: dict[str, float]) -> tuple[float, float]:
        transfer = [a for t, a in accs.items() if t != args.source]
        return accs[args.source], sum(transfer) / len(transfer)

    def probe(name: str, start: nn.Module, bn: bool, lr: float) -> dict:
        model = copy.deepcopy(start)
        if bn:
            recalibrate_batchnorm(model, batches)
        before = summary(accuracies(ctx, model))
        headed = HeadedModel(model, ctx.encoder.feature_fn, ctx.heads[args.source])
        losses = finetune(headed, ctx.splits[args.source][0], MaskHolder({}, {}), dataclasses.replace(schedule, lr=lr),
                          ctx.normalize, ctx.device, seed=config.seeds[0])
        after = summary(accuracies(ctx, model.eval()))
        row = {"model": name, "bn": bn, "lr": lr, "losses": losses, "source_before": before[0],
               "transfer_before": before[1], "source_after": after[0], "transfer_after": after[1]}
        print(json.dumps(row), flush=True)
        return row

    result = {"date": datetime.date.today().isoformat(), "args": {k: str(v) for k, v in vars(args).items()}, "rows": []}
    for name, model in (("dense", dense), (f"taylor@{args.ratio}/{args.round_to}", pruned)):
        for bn in (False, True):
            for lr in args.lrs:
                result["rows"].append(probe(name, model, bn, lr))
                write_atomic(args.out, json.dumps(result, indent=1).encode())  # a stopped run keeps its rows


if __name__ == "__main__":
    main()
