"""Unpruned accuracy of the emoji10 suite through the ridge heads, per encoder x protocol x seed, and the
time to build the suite and render its images.

    python bench/emoji_unpruned.py --encoder efficientnet_lite0      # one JSON per encoder
    python bench/emoji_unpruned.py --table                           # the Markdown table of both

The cheapest exact route: each encoder sees a fixed pool of ``--per-style`` renders per class and style
once (50: the style-disjoint protocol draws 50 evaluation images per class from the held-out design
alone, and Noto and Twemoji are one style each) (decoded as ``pait run`` decodes them, features as its heads stage computes them); every
(protocol, seed) split is then drawn from the pool with ``split_indices`` and its ridge head fit and
evaluated with the heads stage's own ``fit_ridge`` / ``evaluate_head``, at the studies' 50 calibration
and 50 evaluation images per class. Encoders at the studies' input
sizes (EfficientNet-Lite0 at 96 px, the DINOv2 ViT-S/14 at 70 px). Writes
``bench/results/emoji_unpruned_<encoder>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from _timing import ROOT, machine, write_json

import numpy as np
import torch

from pait.config import EncoderConfig
from pait.encoders import build_encoder
from pait.heads import evaluate_head, extract_features, fit_ridge
from pait.report.stats import mean_ci
from pait.tasks import decode, load_suite, split_indices
from pait.tasks.base import held_out_design

SIZES = {"efficientnet_lite0": 96, "vits14_dinov2_imgfocus": 70}
PROTOCOLS = ("heldout", "style-disjoint")
SEEDS = (0, 1, 2)
RESULTS = ROOT / "bench" / "results"


def measure(name: str, per_style: int, per_class: int, save: Callable[[dict], object]) -> dict:
    """Rows of (protocol, seed, task, accuracy) for encoder ``name``, with timings; ``save`` is given the
    result so far after every task (``tasks_done`` of ``tasks``), so a stopped run keeps its finished tasks."""
    start = time.perf_counter()
    tasks = load_suite("emoji10", per_style=per_style)
    build = time.perf_counter() - start
    encoder = build_encoder(EncoderConfig(name, input_size=SIZES[name]))
    encoder.model.eval()
    device = torch.device("cpu")
    result = {"encoder": name, "input_size": SIZES[name], "per_style": per_style, "per_class": per_class,
              "styles": list(tasks[0].style_names), "designs": list(tasks[0].designs), "tasks": len(tasks),
              "tasks_done": 0, "images": 0, "build_seconds": build, "render_seconds": 0.0, "feature_seconds": 0.0,
              "machine": machine(device), "rows": []}
    for task in tasks:
        start = time.perf_counter()
        data = decode(task, np.arange(len(task.labels)), encoder.preprocess.pixels)
        render = time.perf_counter() - start
        start = time.perf_counter()
        with torch.no_grad():
            feats = extract_features(encoder.features, data, encoder.preprocess.normalize, 128, device)
        features_s = time.perf_counter() - start
        for protocol in PROTOCOLS:
            for seed in SEEDS:
                calib, evaluation = split_indices(task.labels, protocol, per_class, per_class, seed, task.class_names,
                                                  task.styles, task.style_names, task.style_designs)
                head = fit_ridge(feats[calib].double(), data.labels[calib], task.num_classes, 1.0)
                accuracy, _ = evaluate_head(feats[evaluation], data.labels[evaluation], head.float())
                held = held_out_design(task.designs, seed) if protocol == "style-disjoint" else None
                result["rows"].append({"protocol": protocol, "seed": seed, "task": task.name,
                                       "classes": task.num_classes, "accuracy": accuracy, "held_out_design": held})
        result["tasks_done"] += 1
        result["images"] += len(task.labels)
        result["render_seconds"] += render
        result["feature_seconds"] += features_s
        save(result)
        print(f"{name} {task.name}: {len(task.labels)} images, rendered in {render:.0f} s, features in "
              f"{features_s:.0f} s", flush=True)
    return result


def table() -> str:
    """Markdown: one line per task, one column per (encoder, protocol). Heldout: mean [95% Student-t
    interval] over seeds. Style-disjoint: mean over seeds, then the accuracy with each design held out
    (one seed each), since with 3 seeds spread over 3 designs a t interval is no sampling interval."""
    results = [json.loads((RESULTS / f"emoji_unpruned_{e}.json").read_text()) for e in SIZES]
    designs = list(dict.fromkeys(results[0]["designs"]))
    columns = [(r, p) for r in results for p in PROTOCOLS]
    heads = {"heldout": "heldout, mean [95% t]", "style-disjoint": f"style-disjoint, mean ({' / '.join(designs)})"}
    lines = ["| task (chance) | " + " | ".join(f"{r['encoder']} {r['input_size']} px, {heads[p]}" for r, p in columns)
             + " |", "|---" * (len(columns) + 1) + "|"]
    tasks = dict.fromkeys((row["task"], row["classes"]) for row in results[0]["rows"])
    for task, n in tasks:
        cells = []
        for r, p in columns:
            rows = [row for row in r["rows"] if (row["protocol"], row["task"]) == (p, task)]
            if not rows:  # a run stopped before this task
                cells.append("not measured")
                continue
            ci = mean_ci([row["accuracy"] for row in rows])
            if p == "heldout":
                cells.append(f"{ci.mean:.3f} [{ci.low:.3f}, {ci.high:.3f}]")
            else:
                by = {row["held_out_design"]: row["accuracy"] for row in rows}
                cells.append(f"{ci.mean:.3f} ({' / '.join(f'{by[d]:.3f}' for d in designs)})")
        lines.append(f"| {task} ({1 / n:.2f}) | " + " | ".join(cells) + " |")
    lines.append("")
    for r in results:
        means = {d: np.mean([row["accuracy"] for row in r["rows"] if row["held_out_design"] == d]) for d in designs}
        heldout = np.mean([row["accuracy"] for row in r["rows"] if row["protocol"] == "heldout"])
        done = len({row["task"] for row in r["rows"]})
        lines.append(f"- {r['encoder']}: mean over its {done} measured task(s) of {len(tasks)}, heldout {heldout:.3f}; "
                     "style-disjoint by held-out design " + ", ".join(f"{d} {m:.3f}" for d, m in means.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", choices=sorted(SIZES))
    parser.add_argument("--per-style", type=int, default=50, help="renders per class and style in the pool")
    parser.add_argument("--per-class", type=int, default=50, help="calibration and evaluation images per class")
    parser.add_argument("--table", action="store_true", help="print the table of the encoders' JSON files")
    args = parser.parse_args()
    if args.table:
        print(table())
        return
    name = f"emoji_unpruned_{args.encoder}.json"
    result = measure(args.encoder, args.per_style, args.per_class, lambda r: write_json(r, None, name))
    path = RESULTS / name
    print(f"built in {result['build_seconds']:.2f} s, rendered {result['images']} images in "
          f"{result['render_seconds']:.0f} s, features in {result['feature_seconds']:.0f} s; wrote {path}")


if __name__ == "__main__":
    main()
