import torch
from safetensors.torch import load_file

import pait.experiment
from pait.cli import build_parser, main
from pait.encoders.base import Encoder
from tests.scores import tiny


def _encoder():
    model = tiny.cnn().float()
    return Encoder("tiny", model, None, tiny.CLASSES, lambda m, x: m(x))


def test_pait_score_writes_scores_and_exact_masks(tmp_path, monkeypatch):
    encoder = _encoder()
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    calibration = lambda name, suite, task: (encoder, x, y, torch.eye(tiny.CLASSES))  # noqa: E731
    monkeypatch.setattr(pait.experiment, "source_calibration", calibration, raising=False)
    assert main(["score", "--encoder", "tiny", "--suite", "s", "--task", "t", "--score", "snip",
                 "--sparsity", "0.5", "0.8", "--batch-size", "4", "--out", str(tmp_path)]) == 0
    scores = load_file(str(tmp_path / "scores.safetensors"))
    assert set(scores) == set(encoder.prunable_parameters())
    total = sum(s.numel() for s in scores.values())
    for q in (0.5, 0.8):
        mask = load_file(str(tmp_path / f"mask-{q:.4f}.safetensors"))
        assert sum(int((~m).sum()) for m in mask.values()) == round(q * total)


def test_score_command_is_discovered():
    help_text = build_parser().format_help()
    assert "score" in help_text
