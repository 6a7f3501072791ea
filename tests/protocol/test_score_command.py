import torch
from safetensors.torch import load_file

from pait.cli import build_parser, main
from pait.encoders import load_encoder


def _args(tmp_path, *extra, task="t1"):
    return ["score", "--encoder", "tiny_cnn", "--suite", "tiny", "--task", task, "--calib-per-class", "4",
            "--eval-per-class", "4", "--device", "cpu", "--cache", str(tmp_path / "cache"),
            "--out", str(tmp_path / "out"), *extra]


def test_pait_score_writes_scores_and_exact_masks(tmp_path):
    assert main(_args(tmp_path, "--score", "snip", "--sparsity", "0.5", "0.8", "--batch-size", "4")) == 0
    scores = load_file(str(tmp_path / "out" / "scores.safetensors"))
    assert set(scores) == set(load_encoder("tiny_cnn").prunable_parameters())
    total = sum(s.numel() for s in scores.values())
    for q in (0.5, 0.8):
        mask = load_file(str(tmp_path / "out" / f"mask-{q:.4f}.safetensors"))
        assert all(m.dtype == torch.uint8 for m in mask.values())
        assert sum(int((m == 0).sum()) for m in mask.values()) == round(q * total)
        kept = torch.cat([scores[k][mask[k].bool()] for k in scores])
        dropped = torch.cat([scores[k][~mask[k].bool()] for k in scores])
        assert dropped.max() <= kept.min()


def test_pait_score_writes_one_score_file_per_sparsity_for_synflow(tmp_path):
    assert main(_args(tmp_path, "--score", "synflow", "--sparsity", "0.3", "0.6")) == 0
    assert (tmp_path / "out" / "scores-0.3000.safetensors").exists()
    assert (tmp_path / "out" / "scores-0.6000.safetensors").exists()


def test_pait_score_names_an_unknown_task(tmp_path, capsys):
    assert main(_args(tmp_path, "--score", "magnitude", task="nope")) == 2
    assert "nope" in capsys.readouterr().err


def test_score_command_is_discovered():
    assert "score" in build_parser().format_help()
