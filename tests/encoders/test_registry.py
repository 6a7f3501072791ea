"""All six paper encoders with random weights: feature sizes, preprocessing, prunable parameter counts."""

import pytest
import torch
from PIL import Image

from pait.encoders import ENCODERS, load_encoder

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)


def resnet50_prunable() -> int:
    """Conv weights of ResNet-50 from its layer shapes (stem, bottlenecks, projections), no fc."""
    total, in_ch = 7 * 7 * 3 * 64, 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for b in range(blocks):
            total += in_ch * width + 9 * width * width + width * 4 * width
            if b == 0:
                total += in_ch * 4 * width
            in_ch = 4 * width
    return total


def vit_prunable(dim: int, depth: int, patch: int) -> int:
    """Patch-embedding conv plus per block: qkv (3d x d), out proj (d x d), MLP (4d x d twice)."""
    return 3 * patch * patch * dim + depth * (3 * dim * dim + dim * dim + 2 * 4 * dim * dim)


EXPECTED = {
    "resnet50_supervised": (2048, resnet50_prunable()),
    "resnet50_mocov2": (2048, resnet50_prunable()),
    "resnet50_dino": (2048, resnet50_prunable()),
    "vitb16_supervised": (768, vit_prunable(768, 12, 16)),
    "vitb16_dino": (768, vit_prunable(768, 12, 16)),
    "vitb16_clip": (512, vit_prunable(768, 12, 16)),
}


def test_known_figures():
    assert resnet50_prunable() == 23_454_912  # 25,557,032 parameters less fc, BN and the conv-free rest
    assert vit_prunable(768, 12, 16) == 85_524_480


def test_registry_lists_the_paper_encoders():
    assert set(EXPECTED) <= set(ENCODERS.names())


@pytest.mark.parametrize("name", EXPECTED)
def test_random_encoder_features_and_prunable_count(name, images):
    encoder = load_encoder(name, weights="random")
    feature_dim, prunable = EXPECTED[name]
    with torch.no_grad():
        features = encoder.features(images)
    assert features.shape == (2, feature_dim) and encoder.feature_dim == feature_dim
    assert torch.isfinite(features).all()
    params = encoder.prunable_parameters()
    assert sum(p.numel() for p in params.values()) == prunable
    named = dict(encoder.model.named_parameters())
    assert all(named[n] is p and p.dim() >= 2 for n, p in params.items())
    pixels = encoder.preprocess(Image.new("RGB", (320, 240), (120, 30, 200)))
    assert pixels.shape == (3, 224, 224)
    assert (encoder.preprocess.mean == CLIP_MEAN) == (name == "vitb16_clip")


def test_clip_proj_is_not_prunable():
    encoder = load_encoder("vitb16_clip", weights="random")
    names = encoder.prunable_parameters()
    assert "proj" not in names and "conv1.weight" in names
    assert "transformer.resblocks.0.attn.in_proj_weight" in names
    assert "transformer.resblocks.0.attn.out_proj.weight" in names
