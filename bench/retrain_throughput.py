"""Masked re-training throughput (images/s) through ``pait.train.finetune``, side by side.

For each model (timm, random init): masked vs unmasked, fp32 vs bf16 autocast, channels_last on/off
(conv nets), torch.compile on/off; then K re-trainings packed with ``finetune_many`` vs the same K run
one after another. Variants are interleaved across repeats and each figure is the median.

    python bench/retrain_throughput.py --device cuda          # ResNet-50 and ViT-B/16, 224 px
    python bench/retrain_throughput.py --device cpu           # small defaults: resnet18, vit_tiny, 64 px
"""

from __future__ import annotations

import argparse
import itertools
from datetime import date

from _timing import CPU_MODELS, GPU_MODELS, default_device, machine, median, timed, timm_backbone, write_json

import torch
from torch import nn

from pait.config import FinetuneConfig
from pait.encoders.base import timm_pre_logits
from pait.train.finetune import MaskHolder, finetune, is_conv_net
from pait.heads import HeadedModel
from pait.masks import global_mask
from pait.train.packed import finetune_many
from pait.tasks.base import TaskData

CLASSES = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--models", nargs="+", help="timm names (default: GPU resnet50 vit_base; CPU resnet18 vit_tiny)")
    parser.add_argument("--image-size", type=int, help="default 224 on GPU, 64 on CPU")
    parser.add_argument("--batch-size", type=int, help="default 128 on GPU, 8 on CPU")
    parser.add_argument("--steps", type=int, help="timed optimiser steps per repeat (default 20 GPU, 3 CPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", choices=["off", "on", "both"], help="default both on GPU, off on CPU")
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], help="default both on GPU, fp32 on CPU")
    parser.add_argument("--pack", type=int, help="re-trainings packed by finetune_many (default 7 GPU, 3 CPU; 0: skip)")
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--out", help="JSON path (default bench/results/retrain_throughput.json)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.device(args.device).type == "cuda"
    args.models = args.models or list(GPU_MODELS if gpu else CPU_MODELS)
    args.image_size = args.image_size or (224 if gpu else 64)
    args.batch_size = args.batch_size or (128 if gpu else 8)
    args.steps = args.steps or (20 if gpu else 3)
    args.compile = args.compile or ("both" if gpu else "off")
    args.precisions = args.precisions or (["fp32", "bf16"] if gpu else ["fp32"])
    args.pack = (7 if gpu else 3) if args.pack is None else args.pack
    return args


def magnitude_mask(model: HeadedModel, sparsity: float) -> dict[str, torch.Tensor]:
    """Global magnitude mask over the backbone's conv and linear weights (speed does not depend on the score)."""
    params = {n: p for n, p in model.backbone.named_parameters() if p.ndim > 1}
    return global_mask({n: p.detach().float() ** 2 for n, p in params.items()}, sparsity)


def variants(model: nn.Module, args: argparse.Namespace) -> list[dict]:
    layouts = ["off", "on"] if is_conv_net(model) else ["off"]
    compiles = {"off": [False], "on": [True], "both": [False, True]}[args.compile]
    return [{"masked": m, "precision": p, "channels_last": c, "compile": t}
            for t, c, p, m in itertools.product(compiles, layouts, args.precisions, [False, True])]


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    n = args.batch_size * args.steps
    gen = torch.Generator().manual_seed(0)
    data = TaskData(torch.randint(0, 256, (n, 3, args.image_size, args.image_size), dtype=torch.uint8, generator=gen),
                    torch.arange(n) % CLASSES)
    normalize = lambda x: (x.float() / 255 - 0.45) / 0.225  # noqa: E731
    results, packed = [], []
    for name in args.models:
        backbone = timm_backbone(name, args.image_size).to(device)
        head = torch.randn(backbone.num_features, CLASSES, device=device) / backbone.num_features**0.5
        model = HeadedModel(backbone, timm_pre_logits, head)
        theta0 = {k: v.clone() for k, v in model.state_dict().items()}
        mask = magnitude_mask(model, args.sparsity)
        params = dict(model.backbone.named_parameters())

        def run(v: dict, epochs: int = 1) -> float:
            model.load_state_dict(theta0)
            config = FinetuneConfig(epochs=epochs, batch_size=args.batch_size, channels_last=v["channels_last"],
                                    compile=v["compile"])
            holder = MaskHolder(params, mask if v["masked"] else {})
            dtype = torch.bfloat16 if v["precision"] == "bf16" else None
            return timed(lambda: finetune(model, data, holder, config, normalize, device, autocast_dtype=dtype), device)

        todo = variants(backbone, args)
        for v in todo:
            run(v)  # warm-up: compilation, cuDNN autotuning, allocator
        times: list[list[float]] = [[] for _ in todo]
        for _ in range(args.repeats):
            for i, v in enumerate(todo):
                times[i].append(run(v))
        for v, t in zip(todo, times):
            row = {"model": name, **v, "seconds": t, "img_per_s": n / median(t)}
            results.append(row)
            print(f"{name:24s} masked={v['masked']!s:5s} {v['precision']} channels_last={v['channels_last']:3s} "
                  f"compile={v['compile']!s:5s} {row['img_per_s']:9.1f} img/s")
        if args.pack > 1:
            packed.append(measure_packing(name, model, theta0, params, data, normalize, device, args))
        del model, backbone
    data_out = {"benchmark": "retrain_throughput", "date": date.today().isoformat(), "machine": machine(device),
                "args": vars(args), "images_per_repeat": n, "results": results, "packed": packed}
    print("wrote", write_json(data_out, args.out, "retrain_throughput.json"))


def measure_packing(name: str, model: HeadedModel, theta0: dict, params: dict, data: TaskData, normalize,
                    device: torch.device, args: argparse.Namespace) -> dict:
    """K masked re-trainings: finetune_many (one vmapped loop) vs K finetune calls, fp32, eager, contiguous."""
    k, n = args.pack, len(data)
    sparsities = torch.linspace(0.36, 0.83, k).tolist()
    masks = [magnitude_mask(model, s) for s in sparsities]
    config = FinetuneConfig(epochs=1, batch_size=args.batch_size, channels_last="off")

    def sequential() -> None:
        for mask in masks:
            model.load_state_dict(theta0)
            finetune(model, data, MaskHolder(params, mask), config, normalize, device)

    def together() -> None:
        finetune_many(model, data, [{f"backbone.{n}": v for n, v in m.items()} for m in masks], config, normalize, device)

    timed(sequential, device), timed(together, device)  # warm-up
    seq, pack = [], []
    for _ in range(args.repeats):
        seq.append(timed(sequential, device))
        pack.append(timed(together, device))
    row = {"model": name, "k": k, "sequential_seconds": seq, "packed_seconds": pack,
           "sequential_img_per_s": k * n / median(seq), "packed_img_per_s": k * n / median(pack),
           "packed_over_sequential": median(seq) / median(pack)}
    print(f"{name:24s} packed x{k}: {row['packed_img_per_s']:.1f} img/s vs sequential {row['sequential_img_per_s']:.1f} img/s "
          f"(ratio {row['packed_over_sequential']:.2f})")
    return row


if __name__ == "__main__":
    main()
