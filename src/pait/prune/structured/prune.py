"""Measures and specs of a structurally pruned module: its MACs and parameters, and the stock timm
architecture that rebuilds it (the cut itself: :mod:`pait.grid.structured`)."""

from __future__ import annotations

from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from pait.encoders import Encoder


def size(model: nn.Module, input_size: int, device: torch.device) -> tuple[int, int]:
    """(MACs per image, parameters) by Torch-Pruning's counter."""
    macs, params = tp.utils.count_ops_and_params(model, torch.zeros(1, 3, input_size, input_size, device=device))
    return int(macs), int(params)


def stock_spec(encoder: Encoder) -> tuple[str | None, dict[str, Any]]:
    """The timm architecture and ``create_model`` arguments that rebuild the encoder's stock module."""
    model = encoder.model
    cfg = getattr(model, "pretrained_cfg", None) or {}
    kwargs: dict[str, Any] = {"num_classes": getattr(model, "num_classes", 0)}
    embed = getattr(model, "patch_embed", None)
    if embed is not None and getattr(embed, "img_size", None) is not None:
        kwargs["img_size"] = int(embed.img_size[0])
    return cfg.get("architecture"), kwargs
