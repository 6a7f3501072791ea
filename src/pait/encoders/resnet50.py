"""ResNet-50 encoders on timm's stock ``resnet50``: supervised ImageNet-1k, MoCo v2 and DINO weights.

Readers, one per published layout (all share torchvision's key names, which timm's ``resnet50`` uses):

- supervised: torchvision's / timm's state dict (``conv1.weight``, ``layer1.0.conv1.weight``, ...,
  ``fc.weight``); a training checkpoint with the state dict under ``state_dict`` or ``model`` also works.
- MoCo v2: the authors' ``.pth.tar``, ``{'epoch', 'arch', 'state_dict', 'optimizer'}`` with the query
  encoder under ``module.encoder_q.`` and an MLP head ``fc.0``/``fc.2`` that is dropped.
- DINO: a plain torchvision-layout state dict without ``fc``.

Features are the 2048-d global average pool; ``fc`` (present only for supervised weights) is the head.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import timm
from torch import Tensor

from pait.encoders.base import Encoder, timm_encoder
from pait.encoders.checkpoints import (
    CheckpointError,
    load_checked,
    read_checkpoint,
    resolve_weights,
    strip_prefix,
    tensor_at,
    unwrap,
)
from pait.encoders.preprocessing import Preprocessing
from pait.encoders.registry import register_encoder

Extract = Callable[[Mapping[str, Any], Path], dict[str, Tensor]]

IMAGENET_PREPROCESSING = Preprocessing(input_size=224, crop_pct=0.875, interpolation="bilinear")


def supervised_state(checkpoint: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    """torchvision / timm layout, the 1000-way ``fc`` included."""
    return unwrap(checkpoint)


def mocov2_state(checkpoint: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    """MoCo v2 layout: the query encoder under ``state_dict`` / ``module.encoder_q.``, MLP head dropped."""
    if not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(f"{path} does not fit the MoCo v2 layout: no 'state_dict' entry")
    state = strip_prefix(checkpoint["state_dict"], "module.encoder_q.")
    if not state:
        raise CheckpointError(f"{path} does not fit the MoCo v2 layout: no 'module.encoder_q.' keys in 'state_dict'")
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def dino_state(checkpoint: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    """DINO layout: a plain torchvision-layout state dict without ``fc``."""
    return dict(checkpoint)


def build_resnet50(
    name: str,
    weights: str | Path | None,
    trust_torchscript: bool,
    extract: Extract,
    layout: str,
    source: str,
    head: bool,
) -> Encoder:
    """timm ``resnet50`` with weights read by ``extract``.

    With ``head`` (supervised) the classifier ``fc`` is kept, sized as in the file (1000 for random init);
    without, the layout has no ``fc`` and a file carrying one is refused.
    """
    path = resolve_weights(weights, name, source)
    state = None if path is None else extract(read_checkpoint(path, trust_torchscript), path)
    if not head:
        num_classes = 0
    elif state is None:
        num_classes = 1000
    else:
        num_classes = tensor_at(state, "fc.weight", path).shape[0] if "fc.weight" in state else 0
    model = timm.create_model("resnet50", pretrained=False, num_classes=num_classes).eval()
    if state is not None:
        load_checked(model, state, path, layout)
    info = {"weights": str(path) if path else "random", "layout": layout}
    return timm_encoder(name, model, ("fc",), info, preprocess=IMAGENET_PREPROCESSING)


_ENTRIES = [
    (
        "resnet50_supervised", "supervised ImageNet-1k", supervised_state, True,
        "torchvision/timm ResNet-50 (conv1, layer1..4, fc)",
        "torchvision resnet50-0676ba61.pth / resnet50-11ad3fa6.pth (download.pytorch.org/models), "
        "or timm resnet50.* model.safetensors (huggingface.co/timm)",
    ),
    (
        "resnet50_mocov2", "MoCo v2 (self-supervised, ImageNet-1k)", mocov2_state, False,
        "MoCo v2 .pth.tar (state_dict / module.encoder_q.*)",
        "moco_v2_800ep_pretrain.pth.tar (github.com/facebookresearch/moco, dl.fbaipublicfiles.com/moco)",
    ),
    (
        "resnet50_dino", "DINO (self-supervised, ImageNet-1k)", dino_state, False,
        "DINO ResNet-50 (torchvision layout, no fc)",
        "dino_resnet50_pretrain.pth (github.com/facebookresearch/dino, dl.fbaipublicfiles.com/dino)",
    ),
]

for _name, _pretraining, _extract, _head, _layout, _source in _ENTRIES:
    register_encoder(_name, architecture="timm resnet50", pretraining=_pretraining, weights=_source)(
        lambda weights, trust, _n=_name, _e=_extract, _l=_layout, _s=_source, _h=_head: build_resnet50(
            _n, weights, trust, _e, _l, _s, _h
        )
    )
