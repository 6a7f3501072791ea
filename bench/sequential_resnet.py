"""Time and memory of `sequential` recovery on ResNet-50 at 224 px (random weights), per layer type.

A global magnitude mask at the given sparsity over the encoder's prunable weights, random images
(normal noise), then :func:`pait.prune.sequential.sequential_prune` with the mask held (``fixed``) or
``adaptive``. Seconds per layer (input collection through the current network plus the solve) are
summed by layer type: 7x7 stem conv, 1x1 conv, 3x3 conv, linear. Peak memory is the process's
maximum resident set size (``ru_maxrss``), model and images included.

    PYTHONPATH=src python bench/sequential_resnet.py [--images 64] [--mode fixed] [--sparsity 0.5]  # -> bench/results/sequential_resnet_fixed.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import time
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from pait.cache import write_atomic
from pait.encoders import load_encoder
from pait.masks import global_mask
from pait.prune.sequential import sequential_prune


def layer_type(module: nn.Module) -> str:
    """7x7 stem, 1x1 conv, 3x3 conv, linear (or the kernel size)."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return {1: "1x1 conv", 3: "3x3 conv", 7: "7x7 stem conv"}.get(kh, f"{kh}x{kw} conv")
    return "linear"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="timm:resnet50")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--mode", default="fixed", choices=["fixed", "adaptive"])
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/sequential_resnet_MODE.json")
    args = parser.parse_args()
    if not 0 < args.sparsity < 1:
        parser.error(f"--sparsity must lie in (0, 1), got {args.sparsity}")
    if args.images < 1 or args.batch_size < 1:
        parser.error(f"--images and --batch-size must be at least 1, got {args.images} and {args.batch_size}")
    args.out = args.out or Path(f"bench/results/sequential_resnet_{args.mode}.json")
    torch.manual_seed(0)
    encoder = load_encoder(args.encoder, "random")
    model = encoder.model.eval()
    params = encoder.prunable_parameters()
    mask = global_mask({k: p.detach().abs() for k, p in params.items()}, args.sparsity)
    x = torch.randn(args.images, 3, args.size, args.size)
    batches = [(b, None) for b in x.split(args.batch_size)]
    per_type: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    layers = []

    def on_layer(key: str, module: nn.Module, seconds: float) -> None:
        kind = layer_type(module)
        per_type[kind][0] += seconds
        per_type[kind][1] += 1
        layers.append({"layer": key, "type": kind, "columns": params[key][0].numel(), "seconds": seconds})
        print(json.dumps(layers[-1]), flush=True)
        save(finished=False)  # a run stopped part-way keeps the layers it finished

    def save(finished: bool, total: float | None = None) -> dict:
        result = {"encoder": args.encoder, "images": args.images, "size": args.size, "sparsity": args.sparsity,
                  "mode": args.mode, "threads": torch.get_num_threads(), "machine": platform.machine(),
                  "date": datetime.date.today().isoformat(), "finished": finished, "total_seconds": total,
                  "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "per_type": {k: {"seconds": s, "layers": n} for k, (s, n) in per_type.items()}, "layers": layers}
        write_atomic(args.out, json.dumps(result, indent=1).encode())
        return result

    start = time.perf_counter()
    sequential_prune(model, batches, params, mask, mode=args.mode, on_layer=on_layer)
    result = save(finished=True, total=time.perf_counter() - start)
    print(json.dumps({k: v for k, v in result.items() if k != "layers"}, indent=1))


if __name__ == "__main__":
    main()
