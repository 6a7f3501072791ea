"""2:4 semi-structured sparsity: measured inference speed against dense, on an NVIDIA GPU.

2:4 masks come from ``pait.prune.nm.nm_mask`` (magnitude scores); weights are converted with
``torch.sparse.to_sparse_semi_structured`` and run through torch's sparse kernels (CUTLASS/cuSPARSELt,
compute capability 8.0+, fp16). Measured: single Linear products of ViT-B/16 shapes, and a whole
ViT-B/16 forward (timm, random init, 224 px) with every Linear of its blocks made 2:4. Medians of
CUDA-event timings after warm-up. On a CPU it says that the kernels need CUDA and measures nothing.

    PYTHONPATH=src python bench/nm_speed.py --device cuda [--out bench/results/nm_speed.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pait.cache import write_atomic
from pait.prune.nm import nm_mask


def timed(fn: Callable[[], object], warmup: int = 10, iters: int = 50) -> float:
    """Median milliseconds of ``fn`` on the current CUDA stream."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def two_four(w: torch.Tensor) -> torch.Tensor:
    """``w`` with a 2:4 magnitude mask applied."""
    return w * nm_mask({"w": w.abs()}, 2, 4)[0]["w"]


@torch.no_grad()
def linear_rows(batch: int) -> list[dict]:
    """Dense vs 2:4 ``F.linear`` for the ViT-B/16 block shapes (tokens = batch * 197, padded to 64)."""
    from torch.sparse import to_sparse_semi_structured

    tokens = -(-batch * 197 // 64) * 64
    rows = []
    for name, (out, inp) in {"qkv": (2304, 768), "proj": (768, 768), "fc1": (3072, 768), "fc2": (768, 3072)}.items():
        w = two_four(torch.randn(out, inp, device="cuda", dtype=torch.float16))
        x = torch.randn(tokens, inp, device="cuda", dtype=torch.float16)
        sparse = to_sparse_semi_structured(w)
        err = (F.linear(x, sparse) - F.linear(x, w)).abs().max().item()
        dense_ms, sparse_ms = timed(lambda: F.linear(x, w)), timed(lambda: F.linear(x, sparse))
        rows.append({"layer": name, "shape": [out, inp], "tokens": tokens, "dense_ms": dense_ms, "sparse_ms": sparse_ms,
                     "speedup": dense_ms / sparse_ms, "max_abs_diff": err})
    return rows


@torch.no_grad()
def vit_row(batch: int) -> dict:
    """Dense vs 2:4 forward of a timm ViT-B/16 whose block Linears are all 2:4."""
    import timm
    from torch.sparse import to_sparse_semi_structured

    model = timm.create_model("vit_base_patch16_224", pretrained=False).half().cuda().eval()
    linears = [m for name, m in model.named_modules() if isinstance(m, nn.Linear) and name.startswith("blocks.")]
    for m in linears:
        m.weight.copy_(two_four(m.weight))
    x = torch.randn(batch, 3, 224, 224, device="cuda", dtype=torch.float16)
    reference = model(x)
    dense_ms = timed(lambda: model(x), iters=20)
    for m in linears:
        m.weight = nn.Parameter(to_sparse_semi_structured(m.weight), requires_grad=False)
    err = (model(x) - reference).abs().max().item()
    sparse_ms = timed(lambda: model(x), iters=20)
    return {"model": "vit_base_patch16_224 (block Linears 2:4)", "batch": batch, "dense_ms": dense_ms,
            "sparse_ms": sparse_ms, "speedup": dense_ms / sparse_ms, "max_abs_diff": err}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench/results/nm_speed.json"))
    args = parser.parse_args()
    if torch.device(args.device).type != "cuda" or not torch.cuda.is_available():
        print(f"semi-structured (2:4) sparse kernels need a CUDA GPU (compute capability 8.0+); "
              f"device {args.device!r} has none, so nothing was measured")
        return 0
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "dtype": "float16",
              "linear": linear_rows(args.batch), "vit": vit_row(args.batch)}
    write_atomic(args.out, json.dumps(result, indent=1).encode())
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
