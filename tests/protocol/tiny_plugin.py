"""A tiny CNN encoder (``tiny_cnn``; ``tiny_cnn_file`` reads its weights from a safetensors file) and a
tiny generated suite (``tiny``) for fast CPU tests.

Importing this module registers both; a subprocess running ``pait`` imports it first.
"""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from pait.encoders import Encoder, Preprocessing, register_encoder
from pait.encoders.checkpoints import resolve_weights
from pait.tasks import SUITES, Task

torch.set_num_threads(1)


@register_encoder("tiny_cnn", "2-layer CNN", "random (seed 0)", "none")
def tiny_cnn(weights: str | None = None, trust_torchscript: bool = False) -> Encoder:
    """A seeded 2-layer CNN on 8x8 inputs; 16 pooled features."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                              nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    preprocess = Preprocessing(input_size=8, crop_pct=1.0, interpolation="bilinear")
    return Encoder("tiny_cnn", model, preprocess, 16, lambda m, x: m(x))


@register_encoder("tiny_cnn_file", "2-layer CNN", "from a file", "a safetensors file of tiny_cnn's state dict")
def tiny_cnn_file(weights: str | None = None, trust_torchscript: bool = False) -> Encoder:
    """``tiny_cnn`` with its state dict read from the safetensors file ``weights``."""
    encoder = tiny_cnn()
    path = resolve_weights(weights, "tiny_cnn_file", "a test file")
    if path is not None:
        encoder.model.load_state_dict(load_file(str(path)))
    encoder.info = {"weights": str(path) if path else "random"}
    return encoder


@SUITES.register("tiny")
def tiny_suite(tasks: int = 3, classes: int = 3, per_class: int = 12) -> list[Task]:
    """``tasks`` tasks of ``classes`` classes; each class a noisy colour, as uint8 8x8 tensors."""
    rng = np.random.default_rng(0)
    out = []
    for t in range(tasks):
        sources, labels = [], []
        for c in range(classes):
            colour = rng.integers(0, 256, size=(3, 1, 1))
            for _ in range(per_class):
                image = np.clip(colour + rng.normal(0, 40, size=(3, 8, 8)), 0, 255).astype(np.uint8)
                sources.append(lambda im=torch.from_numpy(image): im)
                labels.append(c)
        out.append(Task(f"t{t}", tuple(f"c{c}" for c in range(classes)), sources, np.array(labels)))
    return out



