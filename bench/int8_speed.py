"""INT8 on a CPU: EfficientNet-Lite0 (real weights, 224 px) as fp32 and INT8 ONNX models, dense and channel-pruned.

Variants: the dense module, and (unless ``--no-pruned``) a copy pruned at ``--ratio`` (0.3) with every channel
group keeping a multiple of ``--round-to`` (16) channels, by the group score ``--score`` (Torch-Pruning's
``taylor``, the best without recovery in the structured benchmark), with no recovery (``--bn``:
BatchNorm statistics re-estimated on the source calibration images; on these mostly black digits that gives
channels of near-zero variance whose folded BN gain, up to 1/sqrt(eps) ~ 32x gamma, amplifies INT8 rounding
until the export refuses the model). Each is exported to fp32 ONNX and quantised
by ``pait.export.int8`` (QDQ, per-channel QInt8 weights, QInt8 activations), calibrated on the source
calibration images.

Accuracy: embedded suite, held-out protocol (``--calib`` + ``--eval`` images per class, split seed 0), source
``digits-0-4``, the other three tasks as probes; every task through its ridge head fit on the unpruned
encoder and frozen, features from each ONNX Runtime session. Speed: ONNX Runtime (CPU provider, ``--threads``
threads), batch 1 and 32, all four sessions timed back to back in each of ``--repeats`` interleaved repeats;
median per session and the median [min, max] of the paired per-repeat ratios.

    PYTHONPATH=src python bench/int8_speed.py [--out bench/results/int8_speed.json]
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
from pathlib import Path

import onnxruntime as ort
import torch

from pait.cache import StageStore, write_atomic
from pait.config import EncoderConfig, ExperimentConfig, SuiteConfig
from pait.export.int8 import export_int8, onnx_features, qdq_summary, relative_error, session
from pait.export.structured import export_onnx
from pait.grid.stages import prepare
from pait.heads import HeadedModel, SplitBatches, evaluate_head
from pait.prune.int8 import normalised_batches, paired_latency
from pait.prune.structured.groups import build_graph, find_groups, remove_units
from pait.prune.structured.prune import size
from pait.prune.bn_recalibration import recalibrate_batchnorm
from pait.prune.structured.scores import group_scores
from pait.prune.structured.selection import choose_removals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="digits-0-4")
    parser.add_argument("--calib", type=int, default=10)
    parser.add_argument("--eval", type=int, default=10)
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--round-to", type=int, default=16)
    parser.add_argument("--score", default="taylor", help="group score of the pruned copy")
    parser.add_argument("--no-pruned", action="store_true")
    parser.add_argument("--bn", action="store_true", help="re-estimate the pruned copy's BatchNorm statistics")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--cache", type=Path, default=Path("runs/bench-int8"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/int8_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = ExperimentConfig(
        name="bench-int8", encoders=(EncoderConfig("efficientnet_lite0", input_size=224),),
        suite=SuiteConfig("embedded", protocol="heldout", calib_per_class=args.calib, eval_per_class=args.eval),
        score_batch_size=25, eval_batch_size=32, device="cpu", precision="fp32")
    ctx = prepare(config, config.encoders[0], StageStore(args.cache))
    encoder, px = ctx.encoder, ctx.encoder.preprocess.input_size
    dense = encoder.model.eval()
    calib = normalised_batches(encoder, ctx.splits[args.source][0], 32)
    variants = {"dense": dense}
    if not args.no_pruned:
        pruned, prunable = copy.deepcopy(dense), set(encoder.prunable_parameters())
        batches = list(SplitBatches(ctx.splits[args.source][0], ctx.normalize, 25, ctx.device))
        graph = build_graph(pruned, batches[0][0][:1])
        groups = find_groups(pruned, graph, encoder.head_prefixes)
        scores = group_scores(args.score, HeadedModel(pruned, encoder.feature_fn, ctx.heads[args.source]), graph,
                              groups, batches, {n: p for n, p in pruned.named_parameters() if n in prunable})
        remove_units(pruned, graph, groups, choose_removals(groups, scores, args.ratio, round_to=args.round_to))
        if args.bn:
            recalibrate_batchnorm(pruned, batches)
        variants[f"{args.score}@{args.ratio}/{args.round_to}"] = pruned.eval()
    result = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
              "onnxruntime": ort.__version__, "loadavg_start": os.getloadavg(),
              "args": {k: str(v) for k, v in vars(args).items()}, "variants": [], "speed": []}
    sessions = {}
    with tempfile.TemporaryDirectory() as tmp:
        for number, (name, model) in enumerate(variants.items()):
            fp32 = export_onnx(model, Path(tmp) / f"v{number}.onnx", px)
            int8 = export_int8(model, Path(tmp) / f"v{number}.int8.onnx", px, calib, model_name=name)
            sessions[f"{name} fp32"], sessions[f"{name} int8"] = session(fp32, args.threads), session(int8, args.threads)
            macs, params = size(model, px, torch.device("cpu"))
            row = {"variant": name, "macs": macs, "params": params, "bytes_fp32": fp32.stat().st_size,
                   "bytes_int8": int8.stat().st_size, "quantization": qdq_summary(int8),
                   "feature_relative_error_source_eval": relative_error(
                       sessions[f"{name} fp32"], sessions[f"{name} int8"],
                       normalised_batches(encoder, ctx.splits[args.source][1], 32)),
                   "accuracy": {}}
            for precision in ("fp32", "int8"):
                accs = {}
                for task, (_, evaluation) in ctx.splits.items():
                    feats = torch.from_numpy(onnx_features(sessions[f"{name} {precision}"],
                                                           normalised_batches(encoder, evaluation, 32)))
                    accs[task] = evaluate_head(feats, evaluation.labels, ctx.heads[task])[0]
                probes = [t for t in accs if t != args.source]
                row["accuracy"][precision] = {"source": accs[args.source],
                                              "probes_mean": sum(accs[t] for t in probes) / len(probes), "per_task": accs}
            print(json.dumps(row), flush=True)
            result["variants"].append(row)
        result["unpruned_torch"] = {t: a for t, (a, _) in ctx.unpruned.items()}
        for timing in paired_latency(sessions, px, repeats=args.repeats):
            reps = timing["repeats"]
            base = reps["dense fp32"]
            ratios = {n: sorted(b / v for b, v in zip(base, t)) for n, t in reps.items()}
            result["speed"].append({"batch": timing["batch"], "median_ms": {n: v * 1e3 for n, v in timing["median_s"].items()},
                                    "speedup_vs_dense_fp32": {n: {"median": statistics.median(r), "min": r[0], "max": r[-1]}
                                                              for n, r in ratios.items()},
                                    "repeats_s": reps})
            print(json.dumps(result["speed"][-1]["median_ms"]), flush=True)
    result["loadavg_end"] = os.getloadavg()
    write_atomic(args.out, json.dumps(result, indent=1).encode())
    write_atomic(args.out.with_suffix(".md"), tables(result).encode())
    print(tables(result))


def tables(result: dict) -> str:
    """Markdown: accuracy and size per variant and precision, then latency with paired speedups."""
    lines = ["| variant | precision | source acc | probes acc (mean) | file MiB | MMACs | feature rel. error |",
             "|---|---|---|---|---|---|---|"]
    for v in result["variants"]:
        for p in ("fp32", "int8"):
            a = v["accuracy"][p]
            error = f"{v['feature_relative_error_source_eval']:.4f}" if p == "int8" else "-"
            lines.append(f"| {v['variant']} | {p} | {a['source']:.3f} | {a['probes_mean']:.3f} | "
                         f"{v[f'bytes_{p}'] / 2**20:.2f} | {v['macs'] / 1e6:.0f} | {error} |")
    lines += ["", "| session | batch | median ms | speedup vs dense fp32, paired median [min, max] |", "|---|---|---|---|"]
    for s in result["speed"]:
        for name, ms in s["median_ms"].items():
            up = s["speedup_vs_dense_fp32"][name]
            lines.append(f"| {name} | {s['batch']} | {ms:.2f} | {up['median']:.2f}x [{up['min']:.2f}, {up['max']:.2f}] |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
