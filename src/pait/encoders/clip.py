"""CLIP ViT-B/16 image encoder on open_clip's stock ``VisionTransformer`` (OpenAI's QuickGELU variant).

Readers accept the layouts its weights are published in:

- OpenAI's full CLIP state dict (``visual.conv1.weight, visual.class_embedding,
  visual.positional_embedding, visual.ln_pre, visual.transformer.resblocks.N.{ln_1, attn.in_proj_*,
  attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj}, visual.ln_post, visual.proj`` next to the text tower,
  which is ignored); open_clip's files for these weights use the same keys (``.bin``/``.safetensors``),
  its training checkpoints nest them under ``state_dict`` with a ``module.`` prefix;
- OpenAI's TorchScript archive ``ViT-B-16.pt``, only with ``trust_torchscript=True``;
- the visual tower's own state dict (the keys above without ``visual.``).

Features are the visual tower's output embedding: the CLS token after ``ln_post``, times ``proj`` (512-d).

Prunable weights: ``conv1``, every attention ``in_proj_weight`` and ``out_proj.weight`` and the MLP's
``c_fc``/``c_proj``. ``proj`` is a linear map too, but it is the last step of the output embedding, the
role a head plays for the other encoders (DESIGN: heads are not pruned), so it is not prunable; being a
bare Parameter, the generic module-based rule leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from pait.encoders.base import Encoder
from pait.encoders.checkpoints import CheckpointError, load_checked, read_checkpoint, resolve_weights, strip_prefix
from pait.encoders.checkpoints import unwrap
from pait.encoders.preprocessing import Preprocessing
from pait.encoders.registry import register_encoder

CLIP_PREPROCESSING = Preprocessing(
    input_size=224,
    crop_pct=1.0,
    interpolation="bicubic",
    mean=(0.48145466, 0.4578275, 0.40821073),
    std=(0.26862954, 0.26130258, 0.27577711),
)
SOURCE = (
    "OpenAI ViT-B-16.pt (TorchScript, github.com/openai/CLIP; needs trust_torchscript), or open_clip's "
    "ViT-B-16 'openai' open_clip_pytorch_model.bin (huggingface.co/timm/vit_base_patch16_clip_224.openai)"
)
LAYOUT = "OpenAI CLIP / open_clip ViT-B/16 (visual.*)"


def build_visual_tower() -> nn.Module:
    """open_clip's ViT-B/16 ``VisionTransformer`` as in OpenAI's CLIP (QuickGELU, 512-d output)."""
    from open_clip.transformer import QuickGELU, VisionTransformer

    return VisionTransformer(
        image_size=224, patch_size=16, width=768, layers=12, heads=12, mlp_ratio=4.0, output_dim=512,
        act_layer=QuickGELU,
    )


def visual_state(checkpoint: Mapping[str, Any], path: Path) -> dict[str, Tensor]:
    """The visual tower's tensors, from a full CLIP state dict, a training checkpoint or the tower alone."""
    state = unwrap(checkpoint, ("state_dict",))
    if any(k.startswith("module.") for k in state):
        state = strip_prefix(state, "module.")
    if "class_embedding" in state and "conv1.weight" in state:
        return state
    visual = strip_prefix(state, "visual.")
    if not visual:
        first = ", ".join(list(state)[:5])
        raise CheckpointError(f"{path} does not fit the {LAYOUT} layout: no 'visual.' keys (first keys: {first})")
    return visual


def clip_embedding(model: nn.Module, images: Tensor) -> Tensor:
    """The visual tower's output embedding (N, 512)."""
    return model(images)


def build_clip(weights: str | Path | None, trust_torchscript: bool) -> Encoder:
    """open_clip's ViT-B/16 visual tower with OpenAI's CLIP weights (or ``"random"``)."""
    path = resolve_weights(weights, "vitb16_clip", SOURCE)
    model = build_visual_tower().eval()
    if path is not None:
        load_checked(model, visual_state(read_checkpoint(path, trust_torchscript), path), path, LAYOUT)
    return Encoder(
        name="vitb16_clip",
        model=model,
        preprocess=CLIP_PREPROCESSING,
        feature_dim=512,
        feature_fn=clip_embedding,
        info={"weights": str(path) if path else "random", "layout": LAYOUT},
    )


register_encoder(
    "vitb16_clip",
    architecture="open_clip VisionTransformer ViT-B/16 (QuickGELU)",
    pretraining="CLIP (OpenAI, image-text contrastive)",
    weights=SOURCE,
)(build_clip)
