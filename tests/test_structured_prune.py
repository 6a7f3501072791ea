import json

import pytest
from colour_images import write_colour_folder
import torch

from pait.cli import main
from pait.encoders import Encoder, Preprocessing, register_encoder
from pait.encoders.base import timm_pre_logits
from pait.export.structured import features_module, load_structured
from test_structured import tiny_efficientnet

ENCODER = "tiny-structured-test"


@register_encoder(ENCODER, "tiny EfficientNet-Lite-like", "none", "random, seeded")
def _tiny(weights, trust_torchscript=False):
    return Encoder(ENCODER, tiny_efficientnet().float(), Preprocessing(input_size=32, crop_pct=1.0), 24,
                   timm_pre_logits, ("classifier",))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_colour_folder(tmp_path_factory.mktemp("images"), 32)


def _prune(folder, out, *argv):
    return main(["prune", "--encoder", ENCODER, "--data", str(folder), "--calib-per-class", "5",
                 "--eval-per-class", "3", "--device", "cpu", "--batch-size", "8", "--out", str(out), *argv])


@pytest.mark.parametrize("score,recovery", [("kfac", "sgd"), ("fisher_diag", "bn"), ("taylor", "none"),
                                            ("hessian", "none"), ("magnitude", "none"), ("magnitude", "sequential")])
def test_structured_prune_command_writes_a_smaller_module_that_reloads(folder, tmp_path, score, recovery):
    out = tmp_path / "out"
    assert _prune(folder, out, "--structure", "channels", "--ratio", "0.5", "--score", score,
                  "--recovery", recovery, "--retrain-epochs", "1", "--onnx") == 0
    report = json.loads((out / "report.json").read_text())
    assert report["size"]["params_after"] < report["size"]["params_before"]
    assert report["size"]["macs_after"] < report["size"]["macs_before"]
    # the default --round-to 8: each layer keeps a multiple of 8 channels (or all), rounding up, so at most
    # the ratio goes
    assert report["options"]["round_to"] == 8
    assert 0 < report["removed_fraction"]["channels"] <= 0.5 + 1e-12
    assert all(g["kept"] % 8 == 0 or g["kept"] == g["units"] for g in report["groups"] if g["kind"] != "heads")
    assert (out / "pruned.onnx").is_file() and "Structurally pruned" in (out / "report.md").read_text()
    model = load_structured(out, tiny_efficientnet().float())
    assert sum(p.numel() for p in model.parameters()) == report["size"]["params_after"]
    assert features_module(model)(torch.zeros(2, 3, 32, 32)).shape == (2, 24)


@pytest.mark.parametrize("round_to", [4, 16])
def test_round_to_keeps_a_multiple_of_n_channels_in_every_pruned_layer(folder, tmp_path, round_to):
    out = tmp_path / "out"
    assert _prune(folder, out, "--structure", "channels", "--ratio", "0.5", "--score", "magnitude",
                  "--recovery", "none", "--round-to", str(round_to)) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["round_to"] == round_to
    assert all(g["kept"] % round_to == 0 or g["kept"] == g["units"] for g in report["groups"])
    assert any(g["kept"] < g["units"] for g in report["groups"])
    assert f"multiple of {round_to} channels" in (out / "report.md").read_text()
    model = load_structured(out, tiny_efficientnet().float())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    stock = [m for m in tiny_efficientnet().modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.out_channels % round_to == 0 or c.out_channels == s.out_channels for c, s in zip(convs, stock))


@pytest.mark.parametrize("argv,message", [
    (["--structure", "channels", "--ratio", "1.0"], "--ratio must lie in [0, 1), got 1.0"),
    (["--ratio", "0.5"], "--ratio 0.5 needs --structure"),
    (["--structure", "channels"], "--structure channels needs --ratio"),
    (["--structure", "channels", "--ratio", "0.5", "--sparsity", "0.5"], "--sparsity does not combine with"),
    (["--onnx"], "--onnx does not combine with unstructured pruning"),
    (["--structure", "channels", "--ratio", "0.5", "--score", "snip"], "unknown structured score 'snip'"),
    (["--structure", "channels", "--ratio", "0.5", "--recovery", "obs"], "unknown structured recovery 'obs'"),
    (["--structure", "channels", "--ratio", "0.5", "--round-to", "0"], "--round-to: expected int >= 1, got 0"),
    (["--round-to", "8"], "--round-to 8 needs --structure"),
])
def test_bad_structured_input_gives_one_clear_line(folder, tmp_path, capsys, argv, message):
    assert _prune(folder, tmp_path / "x", *argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_evaluate_reads_a_structured_output_and_matches_its_report(folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    for stale in ("mask.safetensors", "pruned.onnx"):  # an earlier unstructured run with --onnx left these
        (out / stale).write_bytes(b"stale")
    assert _prune(folder, out, "--structure", "channels", "--ratio", "0.5", "--score", "magnitude",
                  "--recovery", "none") == 0
    assert sorted(p.name for p in out.iterdir()) == ["pruned.safetensors", "report.json", "report.md", "structure.json"]
    report = json.loads((out / "report.json").read_text())
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(folder), "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == pytest.approx(report["accuracy"]["after_refit_head"])
    assert result["parameters"] == report["size"]["params_after"] and result["structure"] == "channels"


@pytest.mark.parametrize("damage,message", [
    (lambda r: r["modules"].update({"no.such.module": {"out": [0]}}), "module 'no.such.module' is not part of"),
    (lambda r: r["modules"][next(iter(r["modules"]))].update(out=[0, 0]), "indices must be distinct and in [0,"),
    (lambda r: r["modules"][next(iter(r["modules"]))].update(out=[10**6]), "indices must be distinct and in [0,"),
    (lambda r: r["modules"][next(iter(r["modules"]))].update(out="all"), "must be a non-empty list of indices"),
    (lambda r: r.update(format="pait-structured/0"), "is not a pait-structured/1 file"),
    (lambda r: r.update(modules=[]), "'modules' and 'attention' must be objects"),
])
def test_evaluate_names_a_damaged_structure_file(folder, tmp_path, capsys, damage, message):
    out = tmp_path / "out"
    assert _prune(folder, out, "--structure", "channels", "--ratio", "0.5", "--score", "magnitude",
                  "--recovery", "none") == 0
    record = json.loads((out / "structure.json").read_text())
    damage(record)
    (out / "structure.json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(folder), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err and "structure.json" in err, err


def test_score_options_reach_the_structured_score(folder, tmp_path, monkeypatch):
    import pait.grid.structured as structured

    seen, original = [], structured.group_scores

    def spy(*args, **kwargs):
        seen.append(args[6] if len(args) > 6 else kwargs.get("options"))
        return original(*args, **kwargs)

    monkeypatch.setattr(structured, "group_scores", spy)
    assert _prune(folder, tmp_path / "out", "--structure", "channels", "--ratio", "0.5", "--score", "kfac",
                  "--score-option", "damping=1e-2", "--score-option", "damping_mode=absolute", "--recovery", "none") == 0
    assert seen == [{"damping": 0.01, "damping_mode": "absolute"}]
