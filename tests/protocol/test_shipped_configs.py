"""Every shipped config (subfolders included) loads and names only registered encoders, scores and suites."""

from __future__ import annotations

import pytest

from pait.config import PAPER_SPARSITIES, load_config
from pait.configs import CONFIG_DIR, config_path
from pait.grid.validation import validate_config

SHIPPED = sorted(CONFIG_DIR.rglob("*.yaml"))


def test_the_paper_configs_are_shipped():
    names = {str(p.relative_to(CONFIG_DIR).with_suffix("")) for p in SHIPPED}
    encoders = ["resnet50_supervised", "resnet50_mocov2", "resnet50_dino", "vitb16_supervised", "vitb16_dino",
                "vitb16_clip"]
    assert {"demo", *(f"paper/{e}" for e in encoders)} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_shipped_config_is_valid(path):
    config = load_config(config_path(str(path.relative_to(CONFIG_DIR).with_suffix(""))))
    validate_config(config)


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.parent.name == "paper"], ids=lambda p: p.stem)
def test_paper_configs_hold_the_papers_hyper_parameters(path):
    config = load_config(path, ["encoders.0.weights=/w.pth", "suite.options.root=/val"])
    assert config.suite.name == "imagenet10" and config.suite.protocol == "paper" and config.suite.calib_per_class == 50
    assert config.suite.options == {"root": "/val"} and config.encoders[0].weights == "/w.pth"
    assert config.sparsities == PAPER_SPARSITIES
    ft = config.finetune
    assert (ft.epochs, ft.milestones, ft.gamma, ft.momentum, ft.weight_decay) == (90, (30, 60, 80), 0.1, 0.9, 1e-4)
    assert ft.lr == (1e-4 if path.stem == "vitb16_dino" else 5e-5)
    expected = {"magnitude", "fisher_diag", "kfac", "snip", "grasp"} | ({"px"} if path.stem.startswith("resnet") else set())
    assert set(config.scores) == expected and config.sources is None
