"""Score timings. CPU: vectorised fisher_diag against a per-example Python loop (same model, data
and CPU). With ``--device cuda`` also: every registered score on ResNet-50 and ViT-B/16 (timm,
random init, 224 px, 500 images), and K-FAC factors against curvlinops' KFACLinearOperator.

    PYTHONPATH=src python bench/scores.py [--device cuda] [--out bench/results/scores.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import timm
import torch
from timm.models.resnet import BasicBlock, ResNet

from pait.encoders.base import prunable_parameter_names, timm_pre_logits
from pait.heads import HeadedModel, mse_to_one_hot
from pait.scores import SCORES, get_score, score_is_per_sparsity
from pait.scores.kfac import kfac_factors

CLASSES = 10


def headed(backbone: torch.nn.Module, size: int, device: str) -> tuple[HeadedModel, dict]:
    """backbone + a random frozen head, in eval mode, and its prunable parameters."""
    backbone = backbone.to(device).eval()
    dim = timm_pre_logits(backbone, torch.zeros(1, 3, size, size, device=device)).shape[-1]
    model = HeadedModel(backbone, timm_pre_logits, 0.01 * torch.randn(dim, CLASSES, device=device)).eval()
    own = dict(backbone.named_parameters())
    return model, {n: own[n] for n in prunable_parameter_names(backbone)}


def data(n: int, size: int, batch: int, device: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 3, size, size, generator=gen), torch.randint(0, CLASSES, (n,), generator=gen)
    return [(a.to(device), b.to(device)) for a, b in zip(x.split(batch), y.split(batch))]


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def fisher_by_loop(model, batches, params) -> dict:
    """The slow reference: one backward per example."""
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    count = 0
    for x, y in batches:
        for n in range(len(x)):
            grads = torch.autograd.grad(mse_to_one_hot(model(x[n : n + 1]), y[n : n + 1]), list(params.values()))
            for k, g in zip(params, grads):
                total[k] += g.pow(2)
            count += 1
    return {k: p.detach().pow(2) * total[k] / count for k, p in params.items()}


def cpu_fisher(images: int) -> dict:
    torch.manual_seed(0)
    backbone = ResNet(BasicBlock, [1, 1, 1, 1], num_classes=0, channels=(4, 8, 8, 8), stem_width=4)
    model, params = headed(backbone, 32, "cpu")
    batches = data(images, 32, 128, "cpu")
    fast = timed(lambda: get_score("fisher_diag")(model, batches, params, chunk_size=128), "cpu")
    slow = timed(lambda: fisher_by_loop(model, batches, params), "cpu")
    return {"model": "timm ResNet BasicBlock [1,1,1,1], channels (4,8,8,8), 32 px",
            "parameters": sum(p.numel() for p in params.values()), "images": images,
            "vectorised_s": round(fast, 3), "per_example_loop_s": round(slow, 3), "speedup": round(slow / fast, 1)}


def gpu_scores(name: str, images: int, batch: int) -> dict:
    from curvlinops import KFACLinearOperator

    torch.manual_seed(0)
    model, params = headed(timm.create_model(name, pretrained=False, num_classes=0), 224, "cuda")
    batches = data(images, 224, batch, "cuda")
    row = {}
    for score in SCORES:
        options = {"sparsity": 0.8} if score_is_per_sparsity(score) else {}
        try:
            row[score] = round(timed(lambda: get_score(score)(model, batches, params, **options), "cuda"), 2)
        except ValueError as err:  # px outside its scope
            row[score] = f"n/a: {err}"
    row["kfac_factors"] = round(timed(lambda: kfac_factors(model, batches, params), "cuda"), 2)
    supported = {n: p for n, p in params.items() if "attn.in_proj" not in n}
    onehot = [(x, torch.nn.functional.one_hot(y, CLASSES).float()) for x, y in batches]

    def curvlinops_factors() -> None:
        KFACLinearOperator(model, torch.nn.MSELoss(), list(supported.values()), onehot, fisher_type="empirical",
                           kfac_approx="expand", check_deterministic=False).compute_kronecker_factors()

    row["curvlinops_kfac_factors"] = round(timed(curvlinops_factors, "cuda"), 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench/results/scores.json"))
    parser.add_argument("--cpu-images", type=int, default=256)
    parser.add_argument("--gpu-images", type=int, default=500)
    parser.add_argument("--gpu-batch", type=int, default=50)
    args = parser.parse_args()
    results = {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
               "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
               "cpu_fisher_diag": cpu_fisher(args.cpu_images)}
    if args.device == "cuda":
        results["gpu"] = torch.cuda.get_device_name()
        results["cuda_seconds"] = {n: gpu_scores(n, args.gpu_images, args.gpu_batch)
                                   for n in ("resnet50", "vit_base_patch16_224")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
