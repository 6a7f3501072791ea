"""The whole grid for one encoder, extrapolated from a measured slice, fast path vs a plain loop.

The slice is one unit (magnitude score, one sparsity, one source) with ``--epochs`` re-training epochs
on a synthetic in-memory suite of JPEG files (``--tasks`` tasks x ``--classes`` classes x
``--per-class`` images) and a random-init timm encoder, in two or three ways, interleaved ``--repeats`` times after one warm-up round:

- fast: the real code path, ``pait.grid.stages.prepare`` (images decoded once, heads) then
  ``unit_stage`` (mask, evaluation of every task, ``finetune``, evaluation again), defaults for the
  device (bf16 autocast and channels_last on CUDA);
- fast_packed (``--pack K``): K sparsities of the same source and score re-trained together by
  ``pipeline.units_stage`` (``finetune_many``), timed per unit;
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from _timing import default_device, machine, median, timed, timm_encoder, write_json

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

import pait.grid.stages as pipeline
from pait.cache import StageStore
from pait.config import PAPER_SPARSITIES, EncoderConfig, ExperimentConfig, FinetuneConfig, SuiteConfig
from pait.encoders import Encoder, register_encoder
from pait.heads import mse_to_one_hot
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
    parser.add_argument("--pack", type=int, help="also time units packed by finetune_many (default 7 GPU, 0 CPU)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--out", help="JSON path (default bench/results/grid.json)")
    args = parser.parse_args()
    gpu = torch.device(args.device).type == "cuda"
    args.model = args.model or ("resnet50" if gpu else "resnet18")
    args.image_size = args.image_size or (224 if gpu else 64)
    args.per_class = args.per_class or (50 if gpu else 5)
    args.epochs = args.epochs or (3 if gpu else 2)
    args.workers = (8 if gpu else 0) if args.workers is None else args.workers
    args.pack = (7 if gpu else 0) if args.pack is None else args.pack
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

    SUITES.register(SUITE)(suite)
    register_encoder(f"bench-{encoder.name}", "timm " + encoder.name, "none (random init)", "none")(lambda _weights, _trust: encoder)


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


@contextmanager
def timing(spent: dict[str, float], **parts: str) -> Iterator[None]:
    """Accumulate into ``spent[part]`` the seconds spent in the named ``pait.grid.stages`` functions."""
    real = {part: getattr(pipeline, name) for part, name in parts.items()}

    def wrap(part: str) -> Callable:
        def call(*a, **k):
            start = time.perf_counter()
            out = real[part](*a, **k)
            spent[part] = spent.get(part, 0.0) + time.perf_counter() - start
            return out
        return call

    for part, name in parts.items():
        setattr(pipeline, name, wrap(part))
    try:
        yield
    finally:
        for part, name in parts.items():
            setattr(pipeline, name, real[part])


def fast_units(ctx: pipeline.Context, device: torch.device, pack: int) -> dict[str, float]:
    """Seconds per unit by the pipeline: one ``unit_stage`` (pack 1) or ``units_stage`` of ``pack`` sparsities."""
    sparsities = [0.5] if pack == 1 else list(PAPER_SPARSITIES[:pack])
    for s in sparsities:  # recompute: drop the cached unit directories
        shutil.rmtree(ctx.store.path("unit", pipeline.unit_key(ctx, "task0", "magnitude", s)), ignore_errors=True)
    spent: dict[str, float] = {}
    if pack == 1:
        with timing(spent, train="finetune", mask="global_mask"):
            total = timed(lambda: pipeline.unit_stage(ctx, "task0", "magnitude", 0.5), device)
    else:
        with timing(spent, train="finetune_many", mask="global_mask"):
            total = timed(lambda: pipeline.units_stage(ctx, "task0", "magnitude", sparsities), device)
    per_unit = {"train": spent["train"], "mask": spent["mask"], "eval": total - spent["train"] - spent["mask"]}
    return {k: v / len(sparsities) for k, v in per_unit.items()}


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
        kinds = {"fast": lambda: fast_units(ctx, device, 1), "baseline": lambda: baseline_unit(ctx, files, args, device)}
        if args.pack > 1:
            kinds["fast_packed"] = lambda: fast_units(ctx, device, args.pack)
        measured: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
        for run in [None] + list(range(args.repeats)):  # the first round warms up and is not counted
            for kind, unit in kinds.items():
                seconds = unit()
                if run is not None:
                    measured[kind].append(seconds)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    grids = {kind: extrapolate({k: median([u[k] for u in units]) for k in ("train", "mask", "eval")}, args)
             for kind, units in measured.items()}
    base = grids["baseline"]
    speedups = {kind: {"grid": base["grid_s"] / g["grid_s"],
                       "train": base["train_s_per_image_epoch"] / g["train_s_per_image_epoch"],
                       "eval": base["eval_s_per_image"] / g["eval_s_per_image"]} for kind, g in grids.items()}
    result = {"benchmark": "grid", "date": date.today().isoformat(), "machine": machine(device), "args": vars(args),
              "per_encoder_once_s": {"decode_and_heads": once}, "units_s": measured, "grid": grids,
              "speedup_over_baseline": speedups}
    for kind, g in grids.items():
        print(f"{kind:12s} re-training {g['train_img_per_s']:8.1f} img/s, eval {1 / g['eval_s_per_image']:8.1f} img/s, "
              f"grid {g['grid_s'] / 3600:8.2f} h, speedup over baseline: grid {speedups[kind]['grid']:.2f}x, "
              f"re-training {speedups[kind]['train']:.2f}x, evaluation {speedups[kind]['eval']:.2f}x")
    print(f"decode + heads once per encoder: {once:.1f} s")
    print("wrote", write_json(result, args.out, "grid.json"))


if __name__ == "__main__":
    main()
