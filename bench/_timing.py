"""Shared helpers of the re-training benchmarks: source path, machine facts, timm encoders, JSON output."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # run from the source tree, unchanged on any machine

import timm  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from pait.encoders import Encoder, Preprocessing  # noqa: E402
from pait.encoders.base import timm_pre_logits  # noqa: E402

CPU_MODELS = ("resnet18", "vit_tiny_patch16_224")
GPU_MODELS = ("resnet50", "vit_base_patch16_224")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def machine(device: torch.device) -> dict[str, Any]:
    """What the figures were measured on."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "timm": timm.__version__, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def timm_backbone(name: str, image_size: int, seed: int = 0) -> nn.Module:
    """A random-init timm model without classifier (pooled pre-logits), built for ``image_size`` inputs."""
    torch.manual_seed(seed)
    try:
        return timm.create_model(name, pretrained=False, num_classes=0, img_size=image_size).eval()
    except TypeError:  # conv nets take any input size and no img_size argument
        return timm.create_model(name, pretrained=False, num_classes=0).eval()


def timm_encoder(name: str, image_size: int, seed: int = 0) -> Encoder:
    """A pait Encoder around a random-init timm model, with the model's own preprocessing constants."""
    model = timm_backbone(name, image_size, seed)
    cfg = model.pretrained_cfg
    preprocess = Preprocessing(input_size=image_size, crop_pct=cfg.get("crop_pct", 0.875),
                               interpolation=cfg.get("interpolation", "bicubic"), mean=tuple(cfg["mean"]),
                               std=tuple(cfg["std"]))
    return Encoder(name=name, model=model, preprocess=preprocess, feature_dim=model.num_features,
                   feature_fn=timm_pre_logits, info={"weights": "random init"})


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of ``fn()``, synchronising the device before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_json(data: dict[str, Any], out: str | None, default_name: str) -> Path:
    """Write ``data`` to ``out`` or ``bench/results/<default_name>``; returns the path."""
    path = Path(out) if out else ROOT / "bench" / "results" / default_name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path
