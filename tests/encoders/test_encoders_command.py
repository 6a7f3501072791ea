"""``pait encoders`` lists every registered encoder with its counts, and checks weights files."""

import torch

from pait.cli import main
from pait.encoders import ENCODERS


def test_lists_every_encoder_with_counts(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["encoders"]) == 0
    out = capsys.readouterr().out
    for name in ENCODERS.names():
        assert name in out
    assert "85,524,480" in out and "23,454,912" in out and "timm:<model>" in out


def test_check_reports_a_bad_file(tmp_path, capsys):
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "partial.pth")
    assert main(["encoders", "--check", "resnet50_dino", "--weights", str(tmp_path / "partial.pth")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pait: error: {tmp_path / 'partial.pth'} does not fit") and "missing keys" in err
    assert err.count("\n") == 1
