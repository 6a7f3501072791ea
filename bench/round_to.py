"""Which rounding of the pruned widths is fastest: EfficientNet-Lite0 (real weights) pruned at one channel ratio
with each channel group keeping a multiple of 1, 8 or 16 channels, timed against the dense module.

ONNX Runtime (CPU provider) or eager PyTorch, batch 1, 224 px, ``--threads`` threads; all variants interleaved
in every repeat (:mod:`pait.export.speed`); per variant the median ms and the median over repeats of the
paired speed-up dense / variant with its range, plus parameters and MACs (Torch-Pruning's counter). The
group scores are ``magnitude`` (data-free: the widths, not the accuracy, are what is timed here).

    PYTHONPATH=src python bench/round_to.py [--ratio 0.3] [--round-to 1 8 16] [--out bench/results/round_to.json]
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch

from pait.cache import write_atomic
from pait.encoders.registry import load_encoder
from pait.export.speed import RUNTIMES, forward_fn, interleaved, paired_speedup, torch_threads
from pait.prune.structured.groups import build_graph, find_groups, remove_units
from pait.prune.structured.latency import machine
from pait.prune.structured.prune import size
from pait.prune.structured.scores import summed_scores
from pait.prune.structured.selection import choose_removals, removed_fraction
from pait.scores import get_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--round-to", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--inner", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/round_to.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    encoder = load_encoder(args.encoder)
    dense = encoder.model.eval()
    example = torch.zeros(1, 3, args.size, args.size)
    graph = build_graph(dense, example)
    groups = find_groups(dense, graph, encoder.head_prefixes)
    scores = summed_scores(groups, get_score("magnitude")(dense, [], encoder.prunable_parameters()))
    variants = {"dense": dense}
    rows = {"dense": {"round_to": None}}
    for round_to in args.round_to:
        model = copy.deepcopy(dense)
        model_graph = build_graph(model, example)
        model_groups = find_groups(model, model_graph, encoder.head_prefixes)
        removed = choose_removals(model_groups, scores, args.ratio, round_to=round_to)
        remove_units(model, model_graph, model_groups, removed)
        name = f"ratio {args.ratio} round_to {round_to}"
        variants[name] = model
        rows[name] = {"round_to": round_to, "removed_fraction": removed_fraction(model_groups, removed),
                      "widths": {g.name: g.units - len(r) for g, r in zip(model_groups, removed)}}
    with tempfile.TemporaryDirectory() as folder, torch_threads(args.threads):
        fns = {name: forward_fn(m, args.runtime, args.threads, args.batch, args.size, folder)
               for name, m in variants.items()}
        times = interleaved(fns, args.repeats, args.inner)
    for name, model in variants.items():
        macs, params = size(model, args.size, torch.device("cpu"))
        low, mid, high = paired_speedup(times["dense"], times[name])
        rows[name] |= {"macs": macs, "params": params, "median_ms": statistics.median(times[name]) * 1e3,
                       "speedup": mid, "speedup_min": low, "speedup_max": high,
                       "repeats_ms": [t * 1e3 for t in times[name]]}
    result = {"date": datetime.date.today().isoformat(), "machine": machine(), "loadavg_before": load_before,
              "loadavg_after": os.getloadavg(), "args": {k: str(v) for k, v in vars(args).items()},
              "score": "magnitude", "variants": rows}
    write_atomic(args.out, json.dumps(result, indent=1).encode())
    print("| variant | MMACs | params | median ms | paired speed-up [min, max] |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['macs'] / 1e6:.1f} | {r['params']:,} | {r['median_ms']:.2f} | "
              f"{r['speedup']:.2f}x [{r['speedup_min']:.2f}, {r['speedup_max']:.2f}] |")


if __name__ == "__main__":
    main()
