"""Run ``pait prune`` in a child process on the tiny encoder of test_prune_output; with ``--kill-after-first-file``
the process kills itself (SIGKILL: no clean-up runs) right after the first output file is written, with
``--kill-after-scores`` right after the scores stage is in the stage cache. Other flags go to ``pait prune``."""

from __future__ import annotations

import os
import signal
import sys

import torch
from torch import nn

import pait.cache
import pait.export
from pait.cli import main
from pait.encoders import Encoder, Preprocessing, register_encoder

ENCODER = "tiny-prune-output"


def stock() -> nn.Module:
    """The tiny stock module (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()


@register_encoder(ENCODER, "tiny conv net", "none", "random, seeded")
def _tiny(weights, trust_torchscript=False):
    return Encoder(ENCODER, stock(), Preprocessing(input_size=16, crop_pct=1.0), 8, lambda m, x: m(x))


def argv(data: str, out: str, sparsity: str) -> list[str]:
    """A quick ``pait prune`` of the tiny encoder."""
    return ["prune", "--encoder", ENCODER, "--data", data, "--score", "magnitude", "--sparsity", sparsity,
            "--recovery", "none", "--calib-per-class", "2", "--eval-per-class", "2", "--device", "cpu", "--out", out]


if __name__ == "__main__":
    data, out, sparsity, *flags = sys.argv[1:]
    if "--kill-after-first-file" in flags:
        save = pait.export.save_tensors

        def save_then_die(tensors, path):
            save(tensors, path)
            os.kill(os.getpid(), signal.SIGKILL)

        pait.export.save_tensors = save_then_die
    if "--kill-after-scores" in flags:
        log = pait.cache.StageStore._log

        def log_then_die(self, stage, key):
            log(self, stage, key)
            if stage == "scores":
                os.kill(os.getpid(), signal.SIGKILL)

        pait.cache.StageStore._log = log_then_die
    sys.exit(main(argv(data, out, sparsity) + [f for f in flags if not f.startswith("--kill-")]))
