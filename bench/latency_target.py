"""Latency-targeted channel pruning of EfficientNet-Lite0 (real weights): measure the per-group latency table,
choose per-group widths for each target speed-up, prune, and time the result against dense.

Per target: the predicted speed-up (the table's additive model) and the achieved one (median of the paired
ratio dense / pruned over interleaved repeats, with its range), so the additivity of the table is checked
on every final choice; a target missed is asked again, corrected by the measured error
(:func:`pait.prune.structured.widths.calibrated`, both ways, up to ``--rounds`` attempts). ``--saving`` picks
which measured saving the choice trusts (default: the lower quartile of the paired differences). Group scores: ``magnitude``
(data-free; the latency, not the accuracy, is measured). The table is cached in ``--cache`` (a second run
with the same setting on the same machine reuses it).

    PYTHONPATH=src python bench/latency_target.py [--targets 1.3 1.5] [--round-to 8] [--rounds 4]
        [--cache runs/latency-tables] [--out bench/results/latency_target.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import torch

from pait.cache import write_atomic
from pait.encoders.registry import load_encoder
from pait.errors import ConfigError
from pait.export.speed import RUNTIMES, Comparison, compare
from pait.prune.structured.groups import build_graph, find_groups
from pait.prune.structured.latency import ESTIMATORS, LatencySetting, cut_copy, latency_table
from pait.prune.structured.prune import size
from pait.prune.structured.scores import summed_scores
from pait.prune.structured.widths import ROUNDS, SAVINGS, calibrated, latency_targeted_removals, reachable_speedup
from pait.scores import get_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="efficientnet_lite0")
    parser.add_argument("--targets", type=float, nargs="+", default=[1.3, 1.5])
    parser.add_argument("--round-to", type=int, default=8)
    parser.add_argument("--runtime", choices=RUNTIMES, default="onnxruntime")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-widths", type=int, default=8)
    parser.add_argument("--table-repeats", type=int, default=7)
    parser.add_argument("--table-inner", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--estimator", choices=ESTIMATORS, default="median")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--saving", choices=SAVINGS, default="lower_quartile")
    parser.add_argument("--cache", type=Path, default=Path("runs/latency-tables"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/latency_target.json"))
    args = parser.parse_args()
    result = {"date": datetime.date.today().isoformat(), "loadavg_before": os.getloadavg(),
              "args": {k: str(v) for k, v in vars(args).items()}, "targets": []}
    encoder = load_encoder(args.encoder)
    dense = encoder.model.eval()
    setting = LatencySetting(args.runtime, args.threads, args.batch, args.size, args.round_to, args.max_widths,
                             repeats=args.table_repeats, inner=args.table_inner, estimator=args.estimator)
    start = time.perf_counter()
    table = latency_table(dense, encoder.head_prefixes, setting, args.cache)
    result |= {"table_seconds": time.perf_counter() - start, "table_key": table.key, "dense_ms": table.dense_ms}
    example = torch.zeros(1, 3, args.size, args.size)
    groups = find_groups(dense, build_graph(dense, example), encoder.head_prefixes)
    scores = summed_scores(groups, get_score("magnitude")(dense, [], encoder.prunable_parameters()))
    def attempt(target: float) -> tuple[dict, Comparison]:
        removed, plan = latency_targeted_removals(table, groups, scores, target, saving=args.saving)
        pruned = cut_copy(dense, encoder.head_prefixes, removed, args.size)
        macs, params = size(pruned, args.size, torch.device("cpu"))
        plan |= {"macs": macs, "params": params}
        return plan, compare(dense, pruned, args.runtime, args.threads, args.batch, args.size, args.repeats,
                             target=target)

    for target in args.targets:
        try:
            result["targets"].append({"target_speedup": target, "attempts": calibrated(
                attempt, target, reachable_speedup(table, args.saving), args.rounds)})
        except ConfigError as err:
            result["targets"].append({"target_speedup": target, "error": str(err)})
    result["loadavg_after"] = os.getloadavg()
    write_atomic(args.out, json.dumps(result, indent=1).encode())
    print(f"table: {result['table_seconds']:.0f} s, dense {table.dense_ms:.2f} ms")
    print("| target | asked | predicted | achieved [min, max] | MMACs | params |\n|---|---|---|---|---|---|")
    for r in result["targets"]:
        if "error" in r:
            print(f"| {r['target_speedup']} | {r['error']} | | | | |")
        for a in r.get("attempts", []):
            print(f"| {a['target_speedup']:.2f}x | {a['asked_speedup']:.2f}x | {a['predicted_speedup']:.2f}x | "
                  f"{a['achieved_speedup']:.2f}x [{a['achieved_min']:.2f}, {a['achieved_max']:.2f}] | "
                  f"{a['plan']['macs'] / 1e6:.1f} | {a['plan']['params']:,} |")

if __name__ == "__main__":
    main()
