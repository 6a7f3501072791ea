"""A tiny registered encoder and task suite, and one tiny finished run shared by the report tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pait.config import config_from_dict
from pait.encoders import ENCODERS, Encoder, Preprocessing, register_encoder
from pait.executors import run_grid
from pait.grid.plan import run_dir
from pait.heads import mse_to_one_hot
from pait.scores import SCORES
from pait.scores.registry import register_score
from pait.tasks.base import Task
from pait.tasks.suites import SUITES

TINY_ENCODER, TINY_SUITE, TINY_SCORE = "tiny-test-cnn", "tiny-test-suite", "tiny-test-snip"


def _tiny_encoder(weights: str | Path | None, trust_torchscript: bool = False) -> Encoder:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 8, 3),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.1, 0.1)
    return Encoder(TINY_ENCODER, model, Preprocessing(input_size=8, crop_pct=1.0), 8, lambda m, x: m(x))


def _tiny_suite() -> list[Task]:
    rng = np.random.default_rng(0)
    tasks = []
    for t in range(3):
        labels = np.repeat(np.arange(3), 8)
        images = rng.integers(0, 256, (len(labels), 3, 8, 8), dtype=np.uint8)
        images[:, t % 3] = (labels * 100)[:, None, None]  # a learnable cue
        sources = [lambda im=im: torch.from_numpy(im) for im in images]
        tasks.append(Task(f"task-{t}", ("a", "b", "c"), sources, labels))
    return tasks


if TINY_ENCODER not in ENCODERS:
    register_encoder(TINY_ENCODER, "tiny CNN", "random", "none")(_tiny_encoder)
if TINY_SUITE not in SUITES:
    SUITES.register(TINY_SUITE)(_tiny_suite)


def _tiny_snip(model: nn.Module, batches, params) -> dict[str, torch.Tensor]:
    """A data-dependent score, so that masks differ between sources: |theta * dL/dtheta|."""
    grads = {n: torch.zeros_like(p) for n, p in params.items()}
    for images, labels in batches:
        g = torch.autograd.grad(mse_to_one_hot(model(images), labels), list(params.values()))
        for n, gi in zip(params, g):
            grads[n] += gi
    return {n: (p.detach() * grads[n]).abs() for n, p in params.items()}


if TINY_SCORE not in SCORES:
    register_score(TINY_SCORE)(_tiny_snip)


def tiny_config(sources: list[str]):
    """A tiny grid: 1 encoder, 2 scores, 2 sparsities, the given sources, weights kept."""
    return config_from_dict({
        "name": "tiny", "encoders": [TINY_ENCODER],
        "suite": {"name": TINY_SUITE, "calib_per_class": 4, "eval_per_class": 4},
        "scores": ["magnitude", TINY_SCORE], "sparsities": [0.3, 0.6], "sources": sources,
        "finetune": {"epochs": 2, "lr": 0.05, "milestones": [1], "batch_size": 6},
        "device": "cpu", "precision": "fp32", "save_weights": True,
    })


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished tiny run with two sources (results table, units index, stage dirs with weights)."""
    out = tmp_path_factory.mktemp("runs")
    config = tiny_config(["task-0", "task-1"])
    run_grid(config, out, show_progress=False)
    return run_dir(config, out)


@pytest.fixture(autouse=True)
def _prune_cache(tmp_path_factory, monkeypatch):
    """Every test's `pait prune` keeps its stage cache in a fresh temporary folder, never in ~/.cache/pait."""
    monkeypatch.setenv("PAIT_CACHE", str(tmp_path_factory.mktemp("pait-cache")))
