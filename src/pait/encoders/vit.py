"""ViT-B/16 encoders on timm's stock ``vit_base_patch16_224``: supervised and DINO weights.

Readers, one per published layout:

- supervised, timm: ``cls_token, pos_embed, patch_embed.proj.*, blocks.N.{norm1, attn.qkv, attn.proj,
  norm2, mlp.fc1, mlp.fc2}, norm, head`` (.safetensors / .pth / .bin);
- supervised, torchvision: ``class_token, conv_proj, encoder.pos_embedding,
  encoder.layers.encoder_layer_N.{ln_1, self_attention.in_proj_*, self_attention.out_proj, ln_2, mlp.0,
  mlp.3}, encoder.ln, heads.head``, renamed to timm's keys;
- supervised, Google's .npz (big_vision / vision_transformer), read by timm's own ``_load_weights``;
- DINO (facebookresearch/dino): timm's key names without ``head``.

Features are the CLS token after the final norm (768-d); ``head`` is the classifier.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
from torch import Tensor, nn

from pait.encoders.base import Encoder, timm_encoder
from pait.encoders.checkpoints import CheckpointError, load_checked, read_checkpoint, resolve_weights, tensor_at, unwrap
from pait.encoders.preprocessing import Preprocessing
from pait.encoders.registry import register_encoder

ARCH = "vit_base_patch16_224"
IMAGENET_PREPROCESSING = Preprocessing(input_size=224, crop_pct=0.875, interpolation="bicubic")

_TORCHVISION_RENAMES = [
    (r"^class_token$", "cls_token"),
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^encoder\.pos_embedding$", "pos_embed"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.", r"blocks.\1."),
    (r"\.ln_1\.", ".norm1."),
    (r"\.ln_2\.", ".norm2."),
    (r"\.self_attention\.in_proj_(weight|bias)$", r".attn.qkv.\1"),
    (r"\.self_attention\.out_proj\.", ".attn.proj."),
    (r"\.mlp\.(0|linear_1)\.", ".mlp.fc1."),
    (r"\.mlp\.(3|linear_2)\.", ".mlp.fc2."),
    (r"^encoder\.ln\.", "norm."),
    (r"^heads\.head\.", "head."),
]


def torchvision_to_timm(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Rename torchvision ``vit_b_16`` keys to timm's ``vit_base_patch16_224`` (same tensors, same shapes)."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _TORCHVISION_RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def load_npz(model: nn.Module, path: Path) -> None:
    """Load Google's ViT .npz with timm's own reader (numpy arrays only, no pickle)."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        model.load_pretrained(str(path))
    except (KeyError, ValueError, RuntimeError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path} does not fit Google's ViT .npz layout for timm {ARCH}: {err}") from None


def supervised_state(checkpoint: Mapping[str, Any]) -> tuple[dict[str, Tensor], str]:
    """The state dict in timm's names, and the layout it was read as (timm or torchvision)."""
    state = unwrap(checkpoint)
    if "conv_proj.weight" in state:
        return torchvision_to_timm(state), "torchvision vit_b_16"
    return state, f"timm {ARCH}"


def build_vit(name: str, weights: str | Path | None, trust_torchscript: bool, dino: bool, source: str) -> Encoder:
    """timm ``vit_base_patch16_224`` with supervised or DINO weights; the head is kept if the file has one."""
    path = resolve_weights(weights, name, source)
    state, layout, num_classes = None, "random", 0 if dino else 1000
    if path is not None and (dino or path.suffix != ".npz"):
        checkpoint = read_checkpoint(path, trust_torchscript)
        state, layout = (dict(checkpoint), "DINO ViT-B/16 (timm names, no head)") if dino else supervised_state(checkpoint)
        num_classes = 0 if dino else tensor_at(state, "head.weight", path).shape[0] if "head.weight" in state else 0
    model = timm.create_model(ARCH, pretrained=False, num_classes=num_classes).eval()
    if state is not None:
        load_checked(model, state, path, layout)
    elif path is not None:
        load_npz(model, path)
        layout = "Google ViT .npz"
    info = {"weights": str(path) if path else "random", "layout": layout}
    return timm_encoder(name, model, ("head",), info, preprocess=IMAGENET_PREPROCESSING)


SUPERVISED_SOURCE = (
    "timm vit_base_patch16_224.* model.safetensors (huggingface.co/timm), torchvision vit_b_16-c867db91.pth "
    "(download.pytorch.org/models), or Google's ViT-B_16 .npz (github.com/google-research/vision_transformer)"
)
DINO_SOURCE = "dino_vitbase16_pretrain.pth (github.com/facebookresearch/dino, dl.fbaipublicfiles.com/dino)"

register_encoder(
    "vitb16_supervised", architecture=f"timm {ARCH}", pretraining="supervised ImageNet", weights=SUPERVISED_SOURCE
)(lambda weights, trust: build_vit("vitb16_supervised", weights, trust, False, SUPERVISED_SOURCE))
register_encoder(
    "vitb16_dino", architecture=f"timm {ARCH}", pretraining="DINO (self-supervised, ImageNet-1k)", weights=DINO_SOURCE
)(lambda weights, trust: build_vit("vitb16_dino", weights, trust, True, DINO_SOURCE))
