"""Scores that fail on purpose, for the executor's retry tests. Imported only through a config's
``plugins`` (so the registry-wide score tests never see them)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from pait.scores import register_score


@register_score("flaky_once")
def flaky_once(model: nn.Module, batches, params) -> dict[str, torch.Tensor]:
    """Magnitude, but the first call raises when $PAIT_TEST_FLAKY_DIR names a folder without a marker:
    an injected one-time failure, for retry tests across processes."""
    folder = os.environ.get("PAIT_TEST_FLAKY_DIR")
    if folder:
        marker = Path(folder) / "failed-once"
        if not marker.exists():
            marker.touch()
            raise RuntimeError("injected one-time failure")
    return {name: p.detach().pow(2) for name, p in params.items()}


@register_score("always_fails")
def always_fails(model: nn.Module, batches, params) -> dict[str, torch.Tensor]:
    """A score that always raises: its units must be reported without stopping the grid."""
    raise RuntimeError("injected permanent failure")
