"""run_grid with finetune.pack > 1 (finetune_many) gives the results of one unit at a time."""

import numpy as np
import torch
from torch import nn

from pait.config import EncoderConfig, ExperimentConfig, FinetuneConfig, SuiteConfig
from pait.encoders import ENCODERS, Encoder, Preprocessing, register_encoder
from pait.executors import run_grid
from pait.tasks import SUITES
from pait.tasks.base import Task


def _encoder(_weights, _trust_torchscript=False) -> Encoder:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Encoder("tiny", model.eval(), Preprocessing(input_size=8, crop_pct=1.0), 4, lambda m, x: m(x))


def _suite() -> list[Task]:
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 12, 3, 8, 8), dtype=torch.uint8, generator=gen)
    return [Task(f"t{t}", ("a", "b", "c"), [lambda x=x: x for x in images[t]], np.arange(12) % 3) for t in range(2)]


if "test-tiny" not in ENCODERS:
    register_encoder("test-tiny", "", "", "")(_encoder)
if "test-tiny" not in SUITES:
    SUITES.register("test-tiny")(_suite)


def test_packed_retraining_matches_one_unit_at_a_time(tmp_path):
    tables = []
    for pack in (1, 3):
        config = ExperimentConfig(
            name=f"pack{pack}", encoders=(EncoderConfig("test-tiny"),), scores=("magnitude",), sparsities=(0.2, 0.5, 0.8),
            suite=SuiteConfig(name="test-tiny", protocol="paper", calib_per_class=4), device="cpu",
            finetune=FinetuneConfig(epochs=2, lr=0.05, milestones=(1,), batch_size=4, pack=pack))
        tables.append(run_grid(config, tmp_path, show_progress=False))
    a, b = tables
    assert len(a) == len(b) == 2 * 3 * 2 * 3  # sources x sparsities x targets x stages
    assert (a.drop(columns=["accuracy", "loss"]) == b.drop(columns=["accuracy", "loss"])).all().all()
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-4)
    np.testing.assert_allclose(b.accuracy, a.accuracy)
