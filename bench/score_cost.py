"""Cost of every registered score on EfficientNet-Lite0 (real weights) with its frozen ridge head,
as a multiple of one forward+backward pass over the same calibration images, measured side by side.

The model and batches are built exactly as the pipeline builds them for the scores stage (the demo
config: embedded suite, held-out protocol, 50 calibration images per class, ``score_batch_size``
32): ``prepare`` (decoded data and ridge heads, cached under ``bench/results/cache``),
``HeadedModel(encoder, feature_fn, head of the source)``, ``SplitBatches`` of the source's calibration split. The
reference pass is ``autograd.grad`` of the batch's loss w.r.t. every prunable weight, batch by
batch. ``fisher_diag_vmap`` is ``fisher_diag`` with ``layerwise=False`` (the whole-model vmap path
it had before). Repeats are interleaved (reference, then every score, ``--repeats`` times); the ratio is
median score time / median reference time.

    PYTHONPATH=src python bench/score_cost.py [--size 96] [--repeats 3] [--scores fisher_diag,kfac]
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import ROOT, machine, median, timed, write_json  # noqa: E402

import torch  # noqa: E402

from pait.cache import StageStore  # noqa: E402
from pait.config import load_config  # noqa: E402
from pait.configs import config_path  # noqa: E402
from pait.grid.stages import prepare  # noqa: E402
from pait.heads import HeadedModel, SplitBatches, mse_to_one_hot  # noqa: E402
from pait.scores import SCORES, get_score  # noqa: E402

OPTIONS: dict[str, dict[str, Any]] = {"synflow": {"sparsity": 0.4}}  # the demo's higher sparsity, 100 rounds
# rows that are not registered scores: a score with other options (the path it replaced)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {"fisher_diag_vmap": ("fisher_diag", {"layerwise": False})}


def forward_backward(model: torch.nn.Module, batches: SplitBatches, params: dict) -> None:
    """The unit of cost: one forward and one backward pass (gradient of every scored weight) per batch."""
    tensors = list(params.values())
    for images, labels in batches:
        torch.autograd.grad(mse_to_one_hot(model(images), labels), tensors)


def measure(size: int, source: str, per_class: int, repeats: int, scores: list[str]) -> dict[str, Any]:
    overrides = [f"encoders=[{{name: efficientnet_lite0, input_size: {size}}}]", f"suite.calib_per_class={per_class}",
                 "device=cpu"]
    config = load_config(config_path("demo"), overrides)
    ctx = prepare(config, config.encoders[0], StageStore(ROOT / "bench" / "results" / "cache"))
    model = HeadedModel(ctx.encoder.model, ctx.encoder.feature_fn, ctx.heads[source]).eval()
    batches = SplitBatches(ctx.splits[source][0], ctx.normalize, config.score_batch_size, ctx.device)
    params = dict(ctx.encoder.prunable_parameters())
    for p in params.values():
        p.requires_grad_(True)
    runs: dict[str, list[float]] = {"forward_backward": [], **{s: [] for s in scores}}
    absent: dict[str, str] = {}
    for repeat in range(repeats):
        runs["forward_backward"].append(timed(lambda: forward_backward(model, batches, params), ctx.device))
        for score in scores:
            if score in absent:
                continue
            name, options = VARIANTS.get(score, (score, OPTIONS.get(score, {})))
            try:
                runs[score].append(timed(lambda: get_score(name)(model, batches, params, **options), ctx.device))
            except ValueError as err:  # px outside its scope
                absent[score] = str(err)
                del runs[score]
            ctx.reset_weights()
            print(f"size {size} repeat {repeat} {score}: {runs.get(score, ['absent'])[-1]}", flush=True)
    unit = median(runs["forward_backward"])
    return {"input_size": size, "source": source, "images": len(batches.data), "batch_size": config.score_batch_size,
            "parameters": sum(p.numel() for p in params.values()), "tensors": len(params), "repeats": repeats,
            "seconds": runs, "median_s": {k: median(v) for k, v in runs.items()},
            "multiple_of_forward_backward": {k: round(median(v) / unit, 2) for k, v in runs.items()},
            "absent": absent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[96])
    parser.add_argument("--source", default="digits-0-4")
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scores", default=",".join([*SCORES, *VARIANTS]),
                        help="comma-separated registered scores or variants (" + ", ".join(VARIANTS) + ")")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    scores = args.scores.split(",")
    results = {"date": datetime.date.today().isoformat(), "machine": machine(torch.device("cpu")),
               "runs": [measure(s, args.source, args.per_class, args.repeats, scores) for s in args.size]}
    path = write_json(results, args.out, "score_cost.json")
    for run in results["runs"]:
        print(run["input_size"], run["multiple_of_forward_backward"], run["absent"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
