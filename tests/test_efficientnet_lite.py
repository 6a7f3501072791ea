import importlib.metadata as md
from pathlib import Path

import pytest
import torch
from PIL import Image

from pait.encoders import load_encoder


def _foolbox_imagenet() -> list[Path]:
    try:
        data = Path(md.distribution("foolbox").locate_file("foolbox/data"))
    except md.PackageNotFoundError:
        pytest.skip("foolbox 3.3.4 wheel not installed (pip install --no-deps foolbox==3.3.4)")
    files = sorted(data.glob("imagenet_*.jpg"))
    assert len(files) == 20
    return files


@pytest.mark.real_weights
def test_efficientnet_lite0_classifies_the_foolbox_imagenet_images():
    encoder = load_encoder("efficientnet_lite0")
    files = _foolbox_imagenet()
    images = torch.stack([encoder.preprocess(Image.open(f)) for f in files])
    labels = [int(f.stem.split("_")[2]) for f in files]
    with torch.no_grad():
        predictions = encoder.model.eval()(images).argmax(1).tolist()
    correct = sum(p == y for p, y in zip(predictions, labels))
    assert correct >= 17, f"{correct}/20 correct"


@pytest.mark.real_weights
def test_efficientnet_lite0_features_and_prunable_parameters():
    encoder = load_encoder("efficientnet_lite0")
    x = torch.zeros(2, 3, 96, 96)
    with torch.no_grad():
        assert encoder.features(x).shape == (2, 1280)
    prunable = encoder.prunable_parameters()
    assert "classifier.weight" not in prunable
    assert all(p.ndim == 4 for p in prunable.values())  # conv weights only (the classifier is the only linear)
    assert not any("bn" in n for n in prunable)
