"""The whole grid for one encoder, extrapolated from a measured slice, fast path vs a plain loop.

The slice is one unit (magnitude score, one sparsity, one source) with ``--epochs`` re-training epochs
on a synthetic in-memory suite of JPEG files (``--tasks`` tasks x ``--classes`` classes x
``--per-class`` images) and a random-init timm encoder, in two ways, interleaved ``--repeats`` times after one warm-up of each:

- fast: the real code path, ``pait.pipeline.prepare`` (images decoded once, heads) then
  ``unit_stage`` (mask, evaluation of every task, ``finetune``, evaluation again), defaults for the
  device (bf16 autocast and channels_last on CUDA);
- baseline: a plain loop, a torch DataLoader over the JPEG files decoding every epoch and every
  evaluation, fp32, masks re-applied after each step by a Python loop over parameters, a loss
  ``.item()`` per step, one unit at a time.

Each is split into re-training seconds per image-epoch, evaluation seconds per image and mask seconds
per unit, and scaled to the grid: ``--grid-units`` (420 = 10 sources x 7 sparsities x 6 scores) x ``--grid-epochs`` (90) x
``--grid-images`` (500 per task), evaluation of ``--grid-tasks`` (10) tasks before and after. Score
computation is not included (``bench/scores.py`` measures it); decoding and ridge heads are once per
encoder and reported apart.

    python bench/grid.py --device cuda                 # resnet50, 224 px, 50 images per class
    python bench/grid.py --device cpu --threads 1      # resnet18, 64 px, small slice
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from _timing import default_device, machine, median, timed, timm_encoder, write_json

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import pait.pipeline as pipeline
from pait.cache import StageStore
from pait.config import EncoderConfig, ExperimentConfig, FinetuneConfig, SuiteConfig
from pait.encoders import Encoder, register_encoder
from pait.headed import mse_to_one_hot
from pait.masks import global_mask
from pait.tasks.base import Task
from pait.tasks.suites import SUITES

SUITE = "bench-synthetic"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--model", help="timm name (default resnet50 on GPU, resnet18 on CPU)")
    parser.add_argument("--image-size", type=int, help="default 224 on GPU, 64 on CPU")
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, help="images per class and task (default 50 GPU, 5 CPU)")
    parser.add_argument("--epochs", type=int, help="measured re-training epochs (default 3 GPU, 2 CPU)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, help="baseline DataLoader workers (default 8 GPU, 0 CPU)")
    parser.add_argument("--repeats", type=int, default=3, help="timed units of each kind, after one warm-up each")
    parser.add_argument("--grid-units", type=int, default=420)
    parser.add_argument("--grid-epochs", type=int, default=90)
    parser.add_argument("--grid-images", type=int, default=500)
    parser.add_argument("--grid-tasks", type=int, default=10)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--out", help="JSON path (default bench/results/grid.json)")
    args = parser.parse_args()
    gpu = torch.device(args.device).type == "cuda"
    args.model = args.model or ("resnet50" if gpu else "resnet18")
    args.image_size = args.image_size or (224 if gpu else 64)
    args.per_class = args.per_class or (50 if gpu else 5)
    args.epochs = args.epochs or (3 if gpu else 2)
    args.workers = (8 if gpu else 0) if args.workers is None else args.workers
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def write_jpegs(root: Path, args: argparse.Namespace) -> list[list[tuple[Path, int]]]:
    """Smooth random colour images, a little larger than the input size, as JPEG files; per task."""
    rng = np.random.default_rng(0)
    side = int(args.image_size * 1.25)
    tasks = []
    for t in range(args.tasks):
        files = []
        for c in range(args.classes):
            for i in range(args.per_class):
                low = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
                image = Image.fromarray(low).resize((side, side), Image.BILINEAR)
                path = root / f"task{t}" / f"c{c}_{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path, quality=90)
                files.append((path, c))
        tasks.append(files)
    return tasks


def register(files: list[list[tuple[Path, int]]], encoder: Encoder) -> None:
    """The synthetic suite (PIL loaders of the JPEG files) and the encoder, under bench names."""
    def suite() -> list[Task]:
        return [Task(f"task{t}", tuple(f"c{c}" for c in range(max(y for _, y in fs) + 1)),
                     [lambda p=p: Image.open(p) for p, _ in fs], np.array([y for _, y in fs])) for t, fs in enumerate(files)]

    SUITES[SUITE] = suite
    register_encoder(f"bench-{encoder.name}", "timm " + encoder.name, "none (random init)", "none")(lambda _w: encoder)


class JpegFiles(Dataset):
    """The plain loop's dataset: open, decode, resize, crop and normalise a JPEG on every access."""

    def __init__(self, files: list[tuple[Path, int]], encoder: Encoder) -> None:
        self.files, self.preprocess = files, encoder.preprocess

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.files[i]
        return self.preprocess(Image.open(path)), label


def baseline_unit(ctx: pipeline.Context, files: list[list[tuple[Path, int]]], args: argparse.Namespace,
                  device: torch.device) -> dict[str, float]:
    """One unit by the plain loop; returns its re-training and evaluation seconds."""
    model, encoder = ctx.encoder.model, ctx.encoder
    ctx.reset_weights()
    params = encoder.prunable_parameters()
    start = time.perf_counter()
    mask = global_mask({n: p.detach().float() ** 2 for n, p in params.items()}, 0.5)
    mask_s = time.perf_counter() - start
    pairs = [(params[n], mask[n].to(device, params[n].dtype)) for n in mask]
    source_head = ctx.heads["task0"]

    def hold() -> None:
        with torch.no_grad():
            for p, m in pairs:
                p.mul_(m)

    @torch.no_grad()
    def evaluate() -> None:
        for t, fs in enumerate(files):
            for x, y in DataLoader(JpegFiles(fs, encoder), batch_size=128, num_workers=args.workers):
                outputs = encoder.features(x.to(device)) @ ctx.heads[f"task{t}"]
                (outputs.argmax(1).cpu() == y).float().mean().item()

    hold()
    start = time.perf_counter()
    evaluate()
    evaluation = time.perf_counter() - start
    model.eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=5e-5, momentum=0.9, weight_decay=1e-4)
    loader = DataLoader(JpegFiles(files[0], encoder), batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    start = time.perf_counter()
    for _ in range(args.epochs):
        running = 0.0
        for x, y in loader:
            loss = mse_to_one_hot(encoder.features(x.to(device)) @ source_head, y.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            hold()
            running += loss.item()
    train = time.perf_counter() - start
    start = time.perf_counter()
    evaluate()
    evaluation += time.perf_counter() - start
    ctx.reset_weights()
    return {"train": train, "mask": mask_s, "eval": evaluation}


def fast_unit(ctx: pipeline.Context, device: torch.device) -> dict[str, float]:
    """One unit by ``pipeline.unit_stage`` (its cached directory removed first); re-training and mask timed apart."""
    shutil.rmtree(ctx.store.path("unit", pipeline.unit_key(ctx, "task0", "magnitude", 0.5)), ignore_errors=True)
    spent: dict[str, float] = {}
    real = {"train": pipeline.finetune, "mask": pipeline.global_mask}

    def timing(part: str):
        def call(*a, **k):
            start = time.perf_counter()
            out = real[part](*a, **k)
            spent[part] = time.perf_counter() - start
            return out
        return call

    pipeline.finetune, pipeline.global_mask = timing("train"), timing("mask")
    try:
        total = timed(lambda: pipeline.unit_stage(ctx, "task0", "magnitude", 0.5), device)
    finally:
        pipeline.finetune, pipeline.global_mask = real["train"], real["mask"]
    return {**spent, "eval": total - spent["train"] - spent["mask"]}


def extrapolate(unit: dict[str, float], args: argparse.Namespace) -> dict[str, float]:
    """Seconds for the grid from one unit's seconds per re-training image-epoch, per evaluated image and per mask."""
    train_cost = unit["train"] / (args.epochs * args.classes * args.per_class)
    eval_cost = unit["eval"] / (2 * args.tasks * args.classes * args.per_class)
    per_unit = (args.grid_epochs * args.grid_images * train_cost + 2 * args.grid_tasks * args.grid_images * eval_cost
                + unit["mask"])
    return {"train_s_per_image_epoch": train_cost, "eval_s_per_image": eval_cost, "mask_s": unit["mask"],
            "grid_s": args.grid_units * per_unit, "train_img_per_s": 1 / train_cost}


def main() -> None:
    args = parse_args()
    device = torch.device(args.device)
    root = Path(tempfile.mkdtemp(prefix="pait-bench-grid-"))
    try:
        files = write_jpegs(root / "jpeg", args)
        encoder = timm_encoder(args.model, args.image_size)
        register(files, encoder)
        config = ExperimentConfig(
            name="bench-grid", encoders=(EncoderConfig(f"bench-{args.model}"),), scores=("magnitude",),
            suite=SuiteConfig(name=SUITE, protocol="paper", calib_per_class=args.per_class),
            sparsities=(0.5,), finetune=FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size),
            device=args.device)
        start = time.perf_counter()
        ctx = pipeline.prepare(config, config.encoders[0], StageStore(root / "stages"))
        once = time.perf_counter() - start
        pipeline.scores_stage(ctx, "task0", "magnitude", None)  # scores are bench/scores.py's business
        fast_unit(ctx, device), baseline_unit(ctx, files, args, device)  # warm-up, not counted
        fast, base = [], []
        for _ in range(args.repeats):
            fast.append(fast_unit(ctx, device))
            base.append(baseline_unit(ctx, files, args, device))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    slice_f = {k: median([u[k] for u in fast]) for k in ("train", "mask", "eval")}
    slice_b = {k: median([u[k] for u in base]) for k in ("train", "mask", "eval")}
    grid_f, grid_b = extrapolate(slice_f, args), extrapolate(slice_b, args)
    result = {"benchmark": "grid", "date": date.today().isoformat(), "machine": machine(device), "args": vars(args),
              "per_encoder_once_s": {"decode_and_heads": once}, "fast_units": fast, "baseline_units": base,
              "fast": grid_f, "baseline": grid_b,
              "speedup_fast_over_baseline": grid_b["grid_s"] / grid_f["grid_s"],
              "train_speedup_fast_over_baseline": grid_b["train_s_per_image_epoch"] / grid_f["train_s_per_image_epoch"],
              "eval_speedup_fast_over_baseline": grid_b["eval_s_per_image"] / grid_f["eval_s_per_image"]}
    for name, g in (("fast", grid_f), ("baseline", grid_b)):
        print(f"{name:9s} re-training {g['train_img_per_s']:8.1f} img/s, eval {1 / g['eval_s_per_image']:8.1f} img/s, "
              f"grid {g['grid_s'] / 3600:8.2f} h")
    print(f"speedup fast/baseline: grid {result['speedup_fast_over_baseline']:.2f}x, re-training "
          f"{result['train_speedup_fast_over_baseline']:.2f}x, evaluation {result['eval_speedup_fast_over_baseline']:.2f}x; "
          f"decode + heads once per encoder {once:.1f} s")
    print("wrote", write_json(result, args.out, "grid.json"))


if __name__ == "__main__":
    main()
