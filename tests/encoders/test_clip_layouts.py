"""CLIP ViT-B/16 readers: OpenAI's full state dict, open_clip's visual.* file, the TorchScript archive.

Reference: timm's ``vit_base_patch16_clip_quickgelu_224`` loaded through timm's own OpenAI converter.
"""

import pytest
import timm
import torch
from open_clip.transformer import QuickGELU, VisionTransformer
from safetensors.torch import save_file
from timm.models.vision_transformer import checkpoint_filter_fn

from pait.encoders import CheckpointError, load_encoder


@pytest.fixture(scope="module")
def openai_state(randomize_norms) -> dict[str, torch.Tensor]:
    """Full CLIP state dict: the visual tower plus a reduced text tower and OpenAI's metadata tensors."""
    torch.manual_seed(4)
    visual = VisionTransformer(224, 16, 768, 12, 12, 4.0, output_dim=512, act_layer=QuickGELU)
    randomize_norms(visual, 4)
    state = {f"visual.{k}": v.clone() for k, v in visual.state_dict().items()}
    text = {
        "positional_embedding": torch.randn(77, 512), "text_projection": torch.randn(512, 512),
        "logit_scale": torch.tensor(4.6052), "token_embedding.weight": torch.randn(1000, 512),
        "ln_final.weight": torch.ones(512), "ln_final.bias": torch.zeros(512),
        "transformer.resblocks.0.attn.in_proj_weight": torch.randn(1536, 512),
        "transformer.resblocks.0.mlp.c_fc.weight": torch.randn(2048, 512),
        "input_resolution": torch.tensor(224), "context_length": torch.tensor(77), "vocab_size": torch.tensor(49408),
    }
    return state | text


@pytest.fixture(scope="module")
def reference_features(openai_state, images) -> torch.Tensor:
    reference = timm.create_model("vit_base_patch16_clip_quickgelu_224", pretrained=False, num_classes=512).eval()
    reference.load_state_dict(checkpoint_filter_fn(openai_state, reference), strict=True)
    with torch.no_grad():
        return reference(images)


def check(path, reference_features, images, **kwargs):
    encoder = load_encoder("vitb16_clip", weights=path, **kwargs)
    with torch.no_grad():
        features = encoder.features(images)
    assert features.shape == (2, 512)
    torch.testing.assert_close(features, reference_features, atol=1e-5, rtol=1e-5)


def test_openai_full_state_dict(openai_state, reference_features, images, tmp_path):
    torch.save(openai_state, tmp_path / "ViT-B-16.pth")
    check(tmp_path / "ViT-B-16.pth", reference_features, images)


def test_open_clip_visual_safetensors(openai_state, reference_features, images, tmp_path):
    visual = {k: v for k, v in openai_state.items() if k.startswith("visual.")}
    save_file(visual, tmp_path / "open_clip_model.safetensors")
    check(tmp_path / "open_clip_model.safetensors", reference_features, images)


def torchscript_archive(state: dict[str, torch.Tensor], path) -> None:
    """A TorchScript archive whose state_dict() has exactly ``state``'s keys, as OpenAI's jit model does."""

    class Node(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    root = Node()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        module = root
        for part in parents:
            if not hasattr(module, part):
                module.add_module(part, Node())
            module = getattr(module, part)
        module.register_buffer(leaf, value)
    torch.jit.save(torch.jit.script(root), str(path))


def test_torchscript_needs_explicit_trust(openai_state, reference_features, images, tmp_path):
    path = tmp_path / "ViT-B-16.pt"
    torchscript_archive(openai_state, path)
    with pytest.raises(CheckpointError, match="TorchScript archive.*trust_torchscript=True"):
        load_encoder("vitb16_clip", weights=path)
    check(path, reference_features, images, trust_torchscript=True)


def test_non_clip_file_is_refused(tmp_path):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "resnet.pth")
    with pytest.raises(CheckpointError, match="OpenAI CLIP / open_clip ViT-B/16.*no 'visual.' keys"):
        load_encoder("vitb16_clip", weights=tmp_path / "resnet.pth")
