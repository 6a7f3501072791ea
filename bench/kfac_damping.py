"""K-FAC's damping on real weights: its effect on the mask and on zero-shot accuracy, and per-layer diagnostics.

EfficientNet-Lite0 (real ImageNet weights), 96 px, the embedded suite (held-out, 50 + 50 per class),
one global sparsity, one seed. Per source, the K-FAC factors are computed once; the ``kfac`` score is
then formed for every damping (relative: ``damping * mean(diag F)``; absolute: ``damping``) and
normalisation, and each mask is compared with magnitude's and with the default's (IoU of the pruned
sets), its ``conv_head`` density read, and the masked encoder evaluated zero-shot (no re-training)
through the frozen ridge heads of every task. ``magnitude`` and ``fisher_diag`` are reference rows.
The per-layer diagnostics (``pait.scores.kfac_diagnostics``) are printed for the default damping and
stored for relative dampings 1e-6, 1e-3 and 1.

    PYTHONPATH=src python bench/kfac_damping.py [--sources digits-0-4 clothing-a] [--cache /tmp/pait-kfac-damping]
"""

from __future__ import annotations

import argparse
import time
from _timing import machine, write_json

import torch

from pait.cache import StageStore
from pait.errors import ConfigError
from pait.config import EncoderConfig, ExperimentConfig, SuiteConfig
from pait.grid.stages import Context, evaluate_pruned, prepare, scores_stage
from pait.heads import SplitBatches
from pait.heads import HeadedModel
from pait.masks import density_report, global_mask
from pait.report.p1 import pruned_iou
from pait.scores.kfac import kfac_factors, kfac_scores
from pait.scores.kfac_diagnostics import kfac_diagnostics, spectra
from pait.train.finetune import MaskHolder

RELATIVE = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2)
ABSOLUTE = (1e-12, 1e-10, 1e-8, 1e-4)  # B's mean eigenvalue is 1e-13..1e-9 here, A's 1..40
DEFAULT = {"damping": 1e-3,  # the default before this benchmark; "iou_default" compares with it
            "damping_mode": "relative", "normalize": "none"}
DIAGNOSED = (1e-6, 1e-3, 1e0)  # relative dampings whose diagnostics are stored
WATCHED = ("conv_head.weight", "conv_stem.weight")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", nargs="+", default=["digits-0-4", "clothing-a"])
    parser.add_argument("--sparsity", type=float, default=0.4)
    parser.add_argument("--input-size", type=int, default=96)
    parser.add_argument("--cache", default="/tmp/pait-kfac-damping")
    parser.add_argument("--out", help="JSON path (default bench/results/kfac_damping.json)")
    return parser.parse_args()


def flat_keep(mask: dict[str, torch.Tensor]):
    return torch.cat([m.reshape(-1) for m in mask.values()]).numpy()


def zero_shot(ctx: Context, mask: dict[str, torch.Tensor], source: str) -> dict[str, float]:
    """Source and mean transfer accuracy of the masked (not re-trained) encoder."""
    metrics = evaluate_pruned(ctx, MaskHolder(ctx.encoder.prunable_parameters(), mask))
    ctx.reset_weights()
    transfer = [acc for task, (acc, _) in metrics.items() if task != source]
    return {"source_acc": metrics[source][0], "transfer_acc": sum(transfer) / len(transfer),
            "per_task": {task: acc for task, (acc, _) in metrics.items()}}


def row(ctx, source, label, scores, sparsity, references) -> dict:
    mask = global_mask(scores, sparsity)
    keep = flat_keep(mask)
    density = {r.name: r.density for r in density_report(mask)}
    out = {"variant": label, **{f"iou_{name}": pruned_iou(keep, ref) for name, ref in references.items()},
           **{f"density_{n.split('.')[0]}": density[n] for n in WATCHED if n in density},
           **zero_shot(ctx, mask, source), "density": density}
    print(f"  {label:40s} iou_mag={out.get('iou_magnitude', 1):.3f} iou_def={out.get('iou_default', 1):.3f} "
          f"conv_head={out.get('density_conv_head', float('nan')):.3f} src={out['source_acc']:.3f} "
          f"transfer={out['transfer_acc']:.3f}", flush=True)
    return out


def diagnostics_table(diags) -> None:
    print(f"  {'layer':34s} {'A size':>6s} {'rank':>5s} {'cond_rng':>9s} {'e_A':>5s} | {'B size':>6s} {'rank':>5s} "
          f"{'cond_rng':>9s} {'<damp':>5s} {'e_B':>5s} | {'elast':>5s}")
    for d in diags:
        print(f"  {d.name:34s} {d.a.size:6d} {d.a.rank:5d} {d.a.condition_on_range:9.2e} {d.a.damping_share:5.2f} | "
              f"{d.b.size:6d} {d.b.rank:5d} {d.b.condition_on_range:9.2e} {d.b.below_damping:5.2f} "
              f"{d.b.damping_share:5.2f} | {d.score_damping_elasticity:5.2f}")


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    encoder = EncoderConfig("efficientnet_lite0", input_size=args.input_size)
    config = ExperimentConfig(name="kfac-damping", encoders=(encoder,), sources=tuple(args.sources),
                              suite=SuiteConfig("embedded", protocol="heldout", calib_per_class=50, eval_per_class=50),
                              device="cpu")
    ctx = prepare(config, encoder, StageStore(args.cache))
    params = ctx.encoder.prunable_parameters()
    results = {"machine": machine(ctx.device), "date": time.strftime("%Y-%m-%d"), "encoder": encoder.name,
               "input_size": args.input_size, "sparsity": args.sparsity, "default": DEFAULT,
               "unpruned": ctx.unpruned, "sources": {}}
    path = None
    for source in args.sources:
        print(f"source {source}", flush=True)
        start = time.perf_counter()
        ctx.reset_weights()
        model = HeadedModel(ctx.encoder.model, ctx.encoder.feature_fn, ctx.heads[source])
        factors = {k: (a.detach(), b.detach()) for k, (a, b) in
                   kfac_factors(model, SplitBatches(ctx.splits[source][0], ctx.normalize, ctx.config.score_batch_size, ctx.device), params, include_bias=False).items()}
        factor_s = time.perf_counter() - start
        print(f"  factors: {factor_s:.0f} s", flush=True)
        diagnostics, eig = {}, spectra(factors)
        for d in DIAGNOSED:
            diags = kfac_diagnostics(factors, d, "relative", spectra=eig)
            diagnostics[f"relative {d:.0e}"] = [x.as_dict() for x in diags]
            if d == DEFAULT["damping"]:
                print(f"  diagnostics, relative damping {d:g} (rank tolerance: size * eps(float32) * lambda_max)")
                diagnostics_table(diags)
        results["sources"][source] = {"factor_seconds": factor_s, "rows": [], "diagnostics": diagnostics}
        path = write_json(results, args.out, "kfac_damping.json")
        refs = {name: global_mask(scores_stage(ctx, source, name, None), args.sparsity) for name in ("magnitude",)}
        references = {"magnitude": flat_keep(refs["magnitude"]),
                      "default": flat_keep(global_mask(kfac_scores(factors, params, **DEFAULT), args.sparsity))}
        rows = results["sources"][source]["rows"]
        rows += [row(ctx, source, name, scores_stage(ctx, source, name, None), args.sparsity, references)
                for name in ("magnitude", "fisher_diag")]
        variants = [dict(DEFAULT, damping=d, damping_mode="relative") for d in RELATIVE]
        variants += [dict(DEFAULT, damping=d, damping_mode="absolute") for d in ABSOLUTE]
        variants += [dict(DEFAULT, damping=d, normalize="mean") for d in (1e-3,)]
        for v in variants:
            label = f"kfac {v['damping_mode']} {v['damping']:.0e}" + (" norm=mean" if v["normalize"] != "none" else "")
            try:
                scores = kfac_scores(factors, params, **v)
            except ConfigError as err:  # a damping below the factors' round-off: recorded, not fatal
                print(f"  {label:40s} {err}", flush=True)
                rows.append({"variant": label, "error": str(err), **v})
                continue
            rows.append({**row(ctx, source, label, scores, args.sparsity, references), **v})
            path = write_json(results, args.out, "kfac_damping.json")  # partial results survive an interruption
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
