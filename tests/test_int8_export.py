"""INT8 export (ONNX Runtime static quantisation, QDQ): agreement with fp32, format, determinism, refusals."""

import numpy as np
import onnx
import pytest
import torch
from test_structured import tiny_efficientnet, tiny_vit
from torch import nn

import pait.export.int8 as int8
from pait.errors import ConfigError
from pait.export.int8 import export_int8, onnx_features, qdq_summary
from pait.export.structured import features_module
from pait.prune.structured.groups import build_graph, find_groups, remove_units
from pait.prune.structured.scores import summed_scores
from pait.prune.structured.selection import choose_removals


def plain_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1, groups=32), nn.BatchNorm2d(32), nn.ReLU6(),
                         nn.Conv2d(32, 48, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()


def pruned_efficientnet() -> nn.Module:
    """The tiny EfficientNet with half its channels cut out (a physically smaller module)."""
    model = tiny_efficientnet()
    graph = build_graph(model, torch.zeros(1, 3, 32, 32, dtype=torch.float64))
    groups = find_groups(model, graph, ("classifier",))
    scores = summed_scores(groups, {n: p.detach().pow(2) for n, p in model.named_parameters()})
    remove_units(model, graph, groups, choose_removals(groups, scores, 0.5))
    return model.float().eval()


def trained_like_vit() -> nn.Module:
    """The tiny ViT with weights of trained scale: timm's initialisation leaves the class token near 1e-6 and
    the blocks' outputs near zero, so its features would barely depend on the quantised matrix products."""
    model = tiny_vit().float()
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.ndim < 2 or "token" in name or "pos" in name
                                                             else p.shape[-1] ** -0.5))
    return model.eval()


MODELS = {"plain": (plain_cnn, 32), "efficientnet": (lambda: tiny_efficientnet().float(), 32),
          "pruned": (pruned_efficientnet, 32), "vit": (trained_like_vit, 28)}


def _batches(seed: int, count: int = 4, size: int = 32) -> list[np.ndarray]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 3, size, size, generator=g).numpy() for _ in range(count)]


@pytest.mark.parametrize("name", list(MODELS))
def test_int8_features_match_fp32_within_the_quantisation_step(name, tmp_path):
    """Tolerance: MinMax 8-bit activations have a step of range / 255; activations spanning about 7 of their
    standard deviations round with a relative RMS error of (7 / 255) / sqrt(12) ~ 0.008 per tensor, and
    per-channel weights less. Errors of the ~10-20 quantised tensors in a chain add in quadrature to about
    sqrt(15) * 0.008 ~ 0.03, so the bound is relative L2 error < 0.05 over the held-out images, and the
    cosine of every image's features > 0.99 (cos >= 1 - e^2 / 2 for a relative error e of one row, with a margin).
    The ViT keeps its residual-stream Add / Mul in fp32 (``TRANSFORMER_FP32_OPS``); with them quantised it misses
    the bound (0.16)."""
    make, size = MODELS[name]
    model = make()
    path = export_int8(model, tmp_path / "m.int8.onnx", size, _batches(0, size=size), model_name=name)
    test = _batches(1, count=2, size=size)
    got = onnx_features(path, test).astype(np.float64)
    with torch.no_grad():
        ref = torch.cat([features_module(model)(torch.from_numpy(b)) for b in test]).double().numpy()
    relative = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    cosine = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert relative < 0.05, relative
    assert cosine.min() > 0.99, cosine.min()
    assert relative > 0, "nothing was quantised"


def test_the_file_is_qdq_with_per_channel_int8_weights(tmp_path):
    path = export_int8(pruned_efficientnet(), tmp_path / "m.int8.onnx", 32, _batches(0))
    summary = qdq_summary(path)
    assert summary["quantize_nodes"] > 0 and summary["dequantize_nodes"] > 0
    assert summary["per_channel_weights"] >= 5 and summary["per_tensor_weights"] == 0
    assert summary["weight_types"] == ["int8"] and summary["activation_types"] == ["uint8"]  # U8S8
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


def test_qint8_activations_are_int8(tmp_path):
    path = export_int8(plain_cnn(), tmp_path / "m.int8.onnx", 32, _batches(0), activations="qint8")
    assert qdq_summary(path)["activation_types"] == ["int8"]


def test_the_same_calibration_gives_the_same_file(tmp_path):
    model = pruned_efficientnet()
    first = export_int8(model, tmp_path / "a.onnx", 32, _batches(0))
    second = export_int8(model, tmp_path / "b.onnx", 32, _batches(0))
    other = export_int8(model, tmp_path / "c.onnx", 32, _batches(5))

    def initializers(path):
        return {t.name: onnx.numpy_helper.to_array(t).tobytes() for t in onnx.load(str(path)).graph.initializer}

    assert initializers(first) == initializers(second)
    assert initializers(first) != initializers(other)  # the activation ranges follow the calibration images


def test_an_operator_that_breaks_when_quantised_is_refused_by_name(tmp_path, monkeypatch):
    """timm's 'same' padding concatenates pad amounts computed in float: quantising that Concat rounds them
    (relative error 0.25 on this net, against 0.014 without it; the bound is lowered to 0.1 to catch it)."""
    monkeypatch.setattr(int8, "QUANTIZED_OPS", (*int8.QUANTIZED_OPS, "Concat"))
    with pytest.raises(ConfigError, match=r"tiny-net: quantizing operator Concat to INT8 breaks the model"):
        export_int8(tiny_efficientnet().float(), tmp_path / "m.int8.onnx", 32, _batches(0), model_name="tiny-net",
                    max_error=0.1)
    assert not (tmp_path / "m.int8.onnx").exists()


def test_a_failing_quantisation_is_one_config_error_naming_the_operator(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise NotImplementedError("Could not find an implementation for ConvInteger(10) node with name 'c'")

    monkeypatch.setattr(int8, "_quantize", fail)
    with pytest.raises(ConfigError, match=r"tiny-net: operator ConvInteger does not quantize"):
        export_int8(plain_cnn(), tmp_path / "m.int8.onnx", 32, _batches(0), model_name="tiny-net")


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="unknown INT8 activation type 'int4'"):
        export_int8(plain_cnn(), "unused.onnx", 32, _batches(0), activations="int4")
    with pytest.raises(ConfigError, match="at least one batch"):
        export_int8(plain_cnn(), "unused.onnx", 32, [])


def test_measure_int8_reads_source_and_probes_through_the_frozen_heads(tmp_path):
    """The fp32 ONNX accuracy equals the torch encoder's (same features, same head); the INT8 entry has
    every field of the report, and the markdown block renders it."""
    from test_probes import tiny_encoder

    from pait.heads import evaluate_head
    from pait.prune.data import features, fit_head
    from pait.prune.int8 import int8_markdown, measure_int8, write_int8
    from pait.prune.probes import Probe
    from pait.tasks import TaskData

    encoder = tiny_encoder()
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.arange(12) % 2
    calib, evaluation = TaskData(pixels[:6], labels[:6]), TaskData(pixels[6:], labels[6:])
    cpu = torch.device("cpu")
    head = fit_head(encoder, calib, 2, 4, cpu)
    probe = Probe("p", ("a", "b"), calib, evaluation, head, 0.5)
    path = write_int8(encoder, tmp_path / "m.int8.onnx", calib, 4)
    entry = measure_int8(encoder, path, evaluation, head, [probe], batch_size=4, threads=1, repeats=1)
    torch_accuracy = evaluate_head(features(encoder, evaluation, 4, cpu), evaluation.labels, head)[0]
    assert entry["accuracy"]["source"]["fp32"] == torch_accuracy
    assert entry["accuracy"]["probes"][0]["fp32"] == torch_accuracy  # the probe reuses the source's split and head
    assert 0 < entry["feature_relative_error"] < 0.05
    assert [r["batch"] for r in entry["latency"]["rows"]] == [1, 32]
    assert entry["quantization"]["per_channel_weights"] == 2
    assert "| source |" in int8_markdown(entry) and "| probe p |" in int8_markdown(entry)


@pytest.mark.parametrize("flags, expected", [("fpu sse2 avx avx2 fma", True),  # AVX2, no VNNI: 7-bit weights
                                             ("fpu avx2 avx512f avx512bw", True),  # AVX-512 without VNNI
                                             ("fpu avx2 avx512f avx512_vnni", False),
                                             ("fpu avx2 avx_vnni", False),
                                             (None, False)])  # no flags line (not x86)
def test_reduce_range_follows_whether_the_cpu_saturates(flags, expected, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: x\n" + (f"flags\t\t: {flags}\n" if flags else "Features\t: neon\n"))
    assert int8.saturates(info) is expected
    assert int8.saturates(tmp_path / "absent") is False
