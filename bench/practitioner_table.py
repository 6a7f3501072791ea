"""The practitioner's table: a latency-targeted channel study's pruned backbones, quantised and timed.

Reads a finished ``pait run`` of a study with ``latency:`` and ``target_speedups:`` and ``save_weights: true``
(``study/efficientnet_lite0_latency``, ``..._latency_96``, ``study/vits14_dinov2_imgfocus_latency``):

1. Accuracy, per target speed-up over every unit (source x seed): the speed-up each unit achieved in its own
   run (``channels.json``: dense and pruned timed interleaved, median of the paired ratios), how many units
   came within 10% of the target, MACs, source and mean transfer accuracy after the refit, and the
   retention of the unpruned mean transfer (unit transfer / the same unit's unpruned transfer), each with
   its two-way cluster 95% interval over source x seed (``pait.report.stats.crossed_ci``).
2. INT8 (``--int8-seeds``; none with ``--no-int8``): every unit of those seeds and the dense encoder of each
   (source, seed) exported by ``pait.export.int8`` (QDQ, per-channel weights), calibrated on the unit's source
   calibration images, then source and transfer accuracy through the same frozen ridge heads; retention
   against the unpruned fp32 (PyTorch) transfer.
3. Speed: one unit per target (the first source, seed 0) against the dense encoder, all in one interleaved
   run per batch size (``--batches``): fp32 and INT8 in ONNX Runtime, fp32 in eager PyTorch, ``--threads``
   threads; the speed-up of each is the median [min, max] of its paired ratio to dense fp32 in the same
   runtime (INT8 against dense fp32 ONNX Runtime).

    PYTHONPATH=src python bench/practitioner_table.py --run runs/study-efficientnet_lite0_latency
        [--int8-seeds 0 1 2] [--no-int8] [--no-speed] [--batches 1 32] [--repeats 15] [--out bench/results/<study>.json]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import torch

from pait.cache import StageStore, write_atomic
from pait.config import config_from_dict
from pait.export.int8 import export_int8, onnx_features, session
from pait.export.speed import forward_fn, interleaved, paired_speedup, torch_threads
from pait.export.structured import export_onnx, load_structured
from pait.grid.stages import Context, prepare
from pait.heads import evaluate_head
from pait.prune.int8 import normalised_batches
from pait.report.run_folder import read_json, read_results, read_run_config
from pait.report.stats import accuracy_ci, crossed_ci

WITHIN = 0.10  # the goal: achieved speed-up within 10% of the target


def unit_rows(run: Path) -> pd.DataFrame:
    """One row per unit of the run: its key fields, unit folder, the latency outcome of its ``channels.json``,
    MACs, and source / mean transfer accuracy unpruned and after recovery."""
    results = read_results(run)
    rows = []
    for unit in read_json(run / "units.json", list, ("unit", "unit_dir")):
        folder = (run / unit["unit_dir"]).resolve()
        record = json.loads((folder / "channels.json").read_text())
        latency = record["latency"]
        mine = results[results.unit == unit["unit"]]
        acc = {}
        for stage in ("unpruned", "recovered"):
            at = mine[mine.stage == stage]
            acc[f"{stage}_source"] = float(at[at.is_source].accuracy.mean())
            acc[f"{stage}_transfer"] = float(at[~at.is_source].accuracy.mean())
        rows.append({"unit": unit["unit"], "unit_dir": str(folder), "score": unit["score"], "source": unit["source"],
                     "seed": unit["seed"], "target": latency["target_speedup"],
                     "predicted": latency["predicted_speedup"], "achieved": latency["achieved_speedup"],
                     "achieved_min": latency["achieved_min"], "achieved_max": latency["achieved_max"],
                     "macs": record["macs"][1], "dense_macs": record["macs"][0], **acc})
    return pd.DataFrame(rows)


def _interval(values: pd.Series, units: pd.DataFrame, accuracy: bool) -> dict[str, float]:
    ci = (accuracy_ci if accuracy else crossed_ci)(values, units.source, units.seed)
    return {"mean": ci.mean, "low": ci.low, "high": ci.high, "n": ci.n}


def target_table(units: pd.DataFrame) -> list[dict[str, Any]]:
    """Per target speed-up: the achieved speed-ups over units (median, min, max, within 10% of the target),
    MMACs, source and transfer accuracy after recovery and the transfer retention, with crossed intervals;
    the first row is the unpruned encoder (the units' unpruned accuracies)."""
    dense = {"target": None, "n": len(units), "mmacs": float(units.dense_macs.mean()) / 1e6,
             "source": _interval(units.unpruned_source, units, True),
             "transfer": _interval(units.unpruned_transfer, units, True)}
    rows = [dense]
    for target, g in units.groupby("target"):
        within = (g.achieved / target - 1).abs() <= WITHIN
        rows.append({"target": float(target), "n": len(g), "predicted": float(g.predicted.median()),
                     "achieved": {"median": float(g.achieved.median()), "min": float(g.achieved.min()),
                                  "max": float(g.achieved.max())},
                     "within_10pct": int(within.sum()), "mmacs": float(g.macs.mean()) / 1e6,
                     "source": _interval(g.recovered_source, g, True),
                     "transfer": _interval(g.recovered_transfer, g, True),
                     "retention": _interval(g.recovered_transfer / g.unpruned_transfer, g, False)})
    return rows


def _onnx_accuracies(ctx: Context, onnx_file: Path, encoder: Any) -> dict[str, float]:
    """Accuracy of every task's evaluation split through its frozen head, features from the ONNX file."""
    runner = session(onnx_file, torch.get_num_threads())
    out = {}
    for task, (_, evaluation) in ctx.splits.items():
        feats = torch.from_numpy(onnx_features(runner, normalised_batches(encoder, evaluation, 32)))
        out[task] = evaluate_head(feats, evaluation.labels, ctx.heads[task])[0]
    return out


def _pruned_encoder(ctx: Context, unit_dir: str) -> Any:
    model = load_structured(unit_dir, copy.deepcopy(ctx.encoder.model)).float().eval()
    return dataclasses.replace(ctx.encoder, model=model)


def int8_rows(config: Any, store: StageStore, units: pd.DataFrame, seeds: list[int],
              log: Callable[[str], None]) -> list[dict[str, Any]]:
    """INT8 source and mean transfer accuracy of the dense encoder of each (source, seed) and of every unit of
    ``seeds``, each calibrated on its source's calibration images."""
    rows = []
    for seed in seeds:
        ctx = prepare(config, config.encoders[0], store, seed)
        px = ctx.encoder.preprocess.input_size
        mine = units[units.seed == seed]
        jobs = [(source, None, ctx.encoder) for source in dict.fromkeys(mine.source)]
        jobs += [(u.source, u, _pruned_encoder(ctx, u.unit_dir)) for u in mine.itertuples()]
        for source, unit, encoder in jobs:
            start = time.perf_counter()
            with tempfile.TemporaryDirectory() as tmp:
                calib = normalised_batches(encoder, ctx.splits[source][0], 32)
                path = export_int8(encoder.model, Path(tmp) / "int8.onnx", px, calib, model_name="the pruned encoder")
                acc = _onnx_accuracies(ctx, path, encoder)
            transfer = [a for t, a in acc.items() if t != source]
            rows.append({"seed": seed, "source": source, "target": None if unit is None else unit.target,
                         "unit": None if unit is None else unit.unit, "int8_source": acc[source],
                         "int8_transfer": float(np.mean(transfer)),
                         "unpruned_transfer": float(np.mean([ctx.unpruned[t][0] for t in acc if t != source]))})
            log(f"int8 seed {seed} {source} {'dense' if unit is None else f'target {unit.target}'}: "
                f"source {acc[source]:.3f} transfer {rows[-1]['int8_transfer']:.3f} ({time.perf_counter() - start:.0f} s)")
    return rows


def int8_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per target (None: dense), INT8 source and transfer accuracy and transfer retention with crossed intervals."""
    frame = pd.DataFrame(rows)
    dense = frame[frame.target.isna()]
    groups = ([(None, dense)] if len(dense) else []) + [(float(t), g) for t, g in frame.dropna(subset=["target"])
                                                         .groupby("target")]
    return [{"target": target, "n": len(g), "source": _interval(g.int8_source, g, True),
             "transfer": _interval(g.int8_transfer, g, True),
             "retention": _interval(g.int8_transfer / g.unpruned_transfer, g, False)} for target, g in groups]


def speed_rows(ctx: Context, units: pd.DataFrame, batches: list[int], threads: int, repeats: int,
               log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The dense encoder and one unit per target (first source, seed 0) in fp32 / INT8 ONNX Runtime and fp32
    eager, interleaved per batch size; speed-ups against dense fp32 of the same runtime."""
    px = ctx.encoder.preprocess.input_size
    first = units[units.seed == units.seed.min()]
    first = first[first.source == first.source.iloc[0]]
    variants: dict[str, Any] = {"dense": ctx.encoder}
    variants |= {f"{t:g}x": _pruned_encoder(ctx, u) for t, u in zip(first.target, first.unit_dir)}
    out = []
    with tempfile.TemporaryDirectory() as tmp, torch_threads(threads):
        files = {}
        calib = normalised_batches(ctx.encoder, ctx.splits[first.source.iloc[0]][0], 32)
        for i, (name, encoder) in enumerate(variants.items()):
            files[(name, "fp32")] = export_onnx(encoder.model, Path(tmp) / f"{i}.onnx", px)
            files[(name, "int8")] = export_int8(encoder.model, Path(tmp) / f"{i}.int8.onnx", px, calib, model_name=name)
        sessions = {key: session(path, threads) for key, path in files.items()}
        for batch in batches:
            feed = {"images": np.random.default_rng(0).standard_normal((batch, 3, px, px), dtype=np.float32)}
            fns: dict[tuple[str, str, str], Callable[[], Any]] = {
                (name, precision, "onnxruntime"): (lambda s=s: s.run(None, feed))
                for (name, precision), s in sessions.items()}
            fns |= {(name, "fp32", "torch"): forward_fn(e.model, "torch", threads, batch, px, tmp)
                    for name, e in variants.items()}
            times = interleaved(fns, repeats, 20 if batch == 1 else 2)
            for (name, precision, runtime), t in times.items():
                low, mid, high = paired_speedup(times[("dense", "fp32", runtime)], t)
                out.append({"variant": name, "precision": precision, "runtime": runtime, "batch": batch,
                            "median_ms": statistics.median(t) * 1e3, "speedup": mid, "speedup_min": low,
                            "speedup_max": high})
            log(f"speed batch {batch}: " + ", ".join(f"{r['variant']} {r['precision']} {r['runtime']} "
                                                      f"{r['speedup']:.2f}x" for r in out if r["batch"] == batch))
    return out


def _ci(cell: Mapping[str, float], digits: int = 3) -> str:
    if np.isnan(cell["low"]):
        return f"{cell['mean']:.{digits}f}"
    return f"{cell['mean']:.{digits}f} [{cell['low']:.{digits}f}, {cell['high']:.{digits}f}]"


def _label(target: float | None) -> str:
    return "dense" if target is None else f"{target:g}x"


def markdown(result: dict[str, Any]) -> str:
    """The tables of one study: accuracy and achieved speed-up per target, INT8 accuracy, speed."""
    lines = ["| target | n | predicted | achieved: median [min, max] over units | within 10% | MMACs | source acc "
             "| mean transfer acc | transfer retained |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["targets"]:
        if r["target"] is None:
            lines.append(f"| {_label(None)} | {r['n']} | | | | {r['mmacs']:.1f} | {_ci(r['source'])} | {_ci(r['transfer'])} | 1 |")
            continue
        a = r["achieved"]
        lines.append(f"| {_label(r['target'])} | {r['n']} | {r['predicted']:.2f}x | {a['median']:.2f}x [{a['min']:.2f}, "
                     f"{a['max']:.2f}] | {r['within_10pct']}/{r['n']} | {r['mmacs']:.1f} | {_ci(r['source'])} | "
                     f"{_ci(r['transfer'])} | {_ci(r['retention'])} |")
    if result.get("int8"):
        lines += ["", "| INT8 of | n | source acc | mean transfer acc | transfer retained (of unpruned fp32) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {_label(r['target'])} | {r['n']} | {_ci(r['source'])} | {_ci(r['transfer'])} | "
                  f"{_ci(r['retention'])} |" for r in result["int8"]]
    if not result["speed"]:
        return "\n".join(lines) + "\n"
    lines += ["", "| variant | precision | runtime | batch | median ms | speed-up vs dense fp32, same runtime: median "
              "[min, max] |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['precision']} | {r['runtime']} | {r['batch']} | {r['median_ms']:.2f} | "
              f"{r['speedup']:.2f}x [{r['speedup_min']:.2f}, {r['speedup_max']:.2f}] |" for r in result["speed"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run folder of a latency study")
    parser.add_argument("--int8-seeds", type=int, nargs="*", default=None, help="default: every seed of the run")
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--no-speed", action="store_true", help="accuracy only (another run of the study timed them)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/<study>.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run
    config = config_from_dict(read_run_config(run), str(run / "config.json"))
    units = unit_rows(run)
    store = StageStore((Path(units.unit_dir.iloc[0]) / ".." / "..").resolve())
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", flush=True)

    result: dict[str, Any] = {
        "study": config.name, "date": datetime.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(), "threads": args.threads,
        "torch": torch.__version__, "onnxruntime": ort.__version__, "loadavg_start": os.getloadavg(),
        "args": {k: str(v) for k, v in vars(args).items()}, "latency_setting": config.latency,
        "units": units.drop(columns="unit_dir").to_dict("records"), "targets": target_table(units)}
    log(f"{len(units)} units read")
    result["speed"] = [] if args.no_speed else speed_rows(prepare(config, config.encoders[0], store, 0), units,
                                                          args.batches, args.threads, args.repeats, log)
    result["loadavg_after_speed"] = os.getloadavg()
    if not args.no_int8:
        seeds = sorted(set(units.seed)) if args.int8_seeds is None else args.int8_seeds
        result["int8_units"] = int8_rows(config, store, units, seeds, log)
        result["int8"] = int8_table(result["int8_units"])
    out = args.out or Path("bench/results") / f"{config.name}.json"
    write_atomic(out, json.dumps(result, indent=1, default=float).encode())
    write_atomic(out.with_suffix(".md"), markdown(result).encode())
    print(markdown(result))


if __name__ == "__main__":
    main()
