"""Each ViT-B/16 reader against a checkpoint in its published layout; reference: torchvision's vit_b_16."""

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

from pait.encoders import CheckpointError, load_encoder


def timm_to_torchvision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm vit_base_patch16_224 tensors under torchvision's vit_b_16 names (written out key by key)."""
    out = {
        "class_token": state["cls_token"],
        "conv_proj.weight": state["patch_embed.proj.weight"],
        "conv_proj.bias": state["patch_embed.proj.bias"],
        "encoder.pos_embedding": state["pos_embed"],
        "encoder.ln.weight": state["norm.weight"],
        "encoder.ln.bias": state["norm.bias"],
        "heads.head.weight": torch.zeros(1000, 768),
        "heads.head.bias": torch.zeros(1000),
    }
    pairs = {
        "ln_1": "norm1", "ln_2": "norm2", "self_attention.out_proj": "attn.proj", "mlp.0": "mlp.fc1", "mlp.3": "mlp.fc2",
    }
    for i in range(12):
        tv, tm = f"encoder.layers.encoder_layer_{i}.", f"blocks.{i}."
        out[tv + "self_attention.in_proj_weight"] = state[tm + "attn.qkv.weight"]
        out[tv + "self_attention.in_proj_bias"] = state[tm + "attn.qkv.bias"]
        for tv_name, tm_name in pairs.items():
            for p in ("weight", "bias"):
                out[f"{tv}{tv_name}.{p}"] = state[f"{tm}{tm_name}.{p}"]
    return out


def torchvision_cls_features(model: torchvision.models.VisionTransformer, images: torch.Tensor) -> torch.Tensor:
    """CLS token after the final norm, by torchvision's own modules."""
    with torch.no_grad():
        x = model._process_input(images)
        x = torch.cat([model.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return model.encoder(x)[:, 0]


@pytest.fixture(scope="module")
def timm_state(randomize_norms) -> dict[str, torch.Tensor]:
    torch.manual_seed(2)
    model = timm.create_model("vit_base_patch16_224", pretrained=False)
    randomize_norms(model, 2)
    with torch.no_grad():
        model.cls_token.normal_(std=0.5)
        model.pos_embed.normal_(std=0.5)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def timm_reference_features(timm_state, images) -> torch.Tensor:
    reference = torchvision.models.vit_b_16().eval()
    reference.load_state_dict(timm_to_torchvision(timm_state), strict=True)
    return torchvision_cls_features(reference, images)


def test_timm_safetensors(timm_state, timm_reference_features, images, tmp_path):
    save_file(timm_state, tmp_path / "model.safetensors")
    encoder = load_encoder("vitb16_supervised", weights=tmp_path / "model.safetensors")
    with torch.no_grad():
        features = encoder.features(images)
    assert features.shape == (2, 768)
    torch.testing.assert_close(features, timm_reference_features, atol=1e-5, rtol=1e-5)


def test_dino_plain_state_dict(timm_state, timm_reference_features, images, tmp_path):
    dino = {k: v for k, v in timm_state.items() if not k.startswith("head.")}
    torch.save(dino, tmp_path / "dino_vitbase16_pretrain.pth")
    encoder = load_encoder("vitb16_dino", weights=tmp_path / "dino_vitbase16_pretrain.pth")
    with torch.no_grad():
        features = encoder.features(images)
    torch.testing.assert_close(features, timm_reference_features, atol=1e-5, rtol=1e-5)


def test_dino_refuses_a_headed_file(timm_state, tmp_path):
    torch.save(timm_state, tmp_path / "with_head.pth")
    with pytest.raises(CheckpointError, match=r"DINO ViT-B/16.*unexpected keys: head\.weight, head\.bias"):
        load_encoder("vitb16_dino", weights=tmp_path / "with_head.pth")


def test_torchvision_layout(images, tmp_path, randomize_norms):
    torch.manual_seed(3)
    reference = torchvision.models.vit_b_16().eval()
    randomize_norms(reference, 3)
    with torch.no_grad():
        reference.class_token.normal_(std=0.5)
    torch.save(reference.state_dict(), tmp_path / "vit_b_16-c867db91.pth")
    encoder = load_encoder("vitb16_supervised", weights=tmp_path / "vit_b_16-c867db91.pth")
    assert encoder.info["layout"] == "torchvision vit_b_16"
    with torch.no_grad():
        features = encoder.features(images)
    torch.testing.assert_close(features, torchvision_cls_features(reference, images), atol=1e-5, rtol=1e-5)
