"""An input size override reaches the model: a ViT built for 224 px runs at a smaller size with fewer tokens."""

import torch

from pait.config import EncoderConfig
from pait.encoders.registry import build_encoder


def test_vit_input_size_resamples_patch_grid():
    encoder = build_encoder(EncoderConfig(name="timm:vit_tiny_patch16_224", weights="random", input_size=32))
    assert encoder.preprocess.input_size == 32
    assert encoder.model.patch_embed.grid_size == (2, 2)
    assert encoder.model.pos_embed.shape[1] == 1 + 4  # class token + 2 x 2 patches
    with torch.no_grad():
        features = encoder.features(torch.randn(2, 3, 32, 32))
    assert features.shape == (2, encoder.feature_dim)
    assert torch.isfinite(features).all()
