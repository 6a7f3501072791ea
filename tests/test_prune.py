import json

import pytest
from colour_images import write_colour_folder
import safetensors.torch
import torch
from PIL import Image
from torch import nn

from pait.cli import main
from pait.encoders import Encoder, Preprocessing, register_encoder
from pait.export import load_into, load_mask, save_pruned
from pait.prune.options import RECOVERIES
from pait.prune.options import PruneOptions

ENCODER = "tiny-prune-test"


def _stock() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 8)).eval()


@register_encoder(ENCODER, "tiny conv net", "none", "random, seeded")
def _tiny(weights, trust_torchscript=False):
    return Encoder(ENCODER, _stock(), Preprocessing(input_size=16, crop_pct=1.0), 8, lambda m, x: m(x))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_colour_folder(tmp_path_factory.mktemp("images"), 16)


def prune(folder, out, *flags: str) -> dict:
    """`pait prune` of the tiny encoder on ``folder`` into ``out``; its report."""
    assert main(["prune", "--encoder", ENCODER, "--data", str(folder), "--calib-per-class", "5", "--eval-per-class",
                 "3", "--device", "cpu", "--out", str(out), *flags]) == 0
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("recovery", ["none", "obs", "sgd", "bn", "sequential", "sequential-adaptive", "bn+sequential"])
def test_pruned_checkpoint_reloads_into_a_fresh_stock_module_with_exact_sparsity(folder, tmp_path, recovery):
    report = prune(folder, tmp_path / "out", "--score", "kfac", "--sparsity", "0.6", "--recovery", recovery,
                   "--retrain-epochs", "2", "--batch-size", "8")
    encoder = _tiny(None)
    encoder.model.load_state_dict(safetensors.torch.load_file(str(tmp_path / "out" / "pruned.safetensors")))
    mask = load_mask(tmp_path / "out")
    save_pruned(encoder.model, mask, tmp_path)
    fresh = _stock()
    fresh.load_state_dict(safetensors.torch.load_file(str(tmp_path / "pruned.safetensors")))  # plain torch
    assert load_mask(tmp_path).keys() == mask.keys()
    params = dict(fresh.named_parameters())
    total = sum(m.numel() for m in mask.values())
    assert sum(int((~m).sum()) for m in mask.values()) == round(0.6 * total)
    for name, m in mask.items():
        assert (params[name][~m] == 0).all()
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(fresh(x), encoder.model(x))
    other = load_into(_stock(), tmp_path)
    assert torch.equal(other(x), encoder.model(x))
    assert report["parameters"]["after"]["prunable_nonzero"] <= total - round(0.6 * total)


def test_prune_and_evaluate_commands_end_to_end(folder, tmp_path, capsys):
    out = tmp_path / "pruned"
    code = main(["prune", "--encoder", ENCODER, "--data", str(folder), "--score", "kfac", "--sparsity", "0.5",
                 "--recovery", "obs", "--calib-per-class", "5", "--eval-per-class", "3", "--device", "cpu",
                 "--out", str(out)])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert report["data"]["calibration"] == 15 and report["data"]["evaluation"] == 9
    assert set(report["storage_bytes"]) == {"dense", "sparse_values_plus_bitmask", "zlib_safetensors"}
    assert "storage, not time" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out), "--data", str(folder), "--device", "cpu", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == pytest.approx(report["accuracy"]["after_refit_head"])
    assert result["sparsity"] == pytest.approx(report["sparsity"])


def test_nm_pattern_through_the_command(folder, tmp_path):
    out = tmp_path / "nm"
    assert main(["prune", "--encoder", ENCODER, "--data", str(folder), "--nm", "2:4", "--recovery", "none",
                 "--score", "magnitude", "--calib-per-class", "5", "--eval-per-class", "3", "--device", "cpu",
                 "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["nm_dense_layers"] == ["0.weight"]  # 3 * 3 * 3 = 27 inputs, not divisible by 4
    mask = load_mask(out)
    rows = mask["3.weight"].reshape(8, -1, 4)
    assert (rows.sum(-1) == 2).all()


def _prune(argv, tmp_path):
    return main(["prune", "--encoder", ENCODER, "--device", "cpu", "--out", str(tmp_path / "x"), *argv])


@pytest.mark.parametrize("argv,message", [
    (["--data", "/nonexistent/folder"], "does not exist"),
    (["--sparsity", "1.0"], "sparsity must lie in [0, 1)"),
    (["--calib-per-class", "7"], "too few in"),
    (["--encoder", "no-such-encoder"], "unknown encoder"),
    (["--score", "kfac", "--score-option", "dampin=0.1"], "score 'kfac' has no option(s) dampin; its options: damping"),
    (["--score-option", "damping"], "--score-option 'damping' is not of the form KEY=VALUE"),
])
def test_bad_input_gives_a_clear_error(folder, tmp_path, capsys, argv, message):
    argv = argv if "--data" in argv else ["--data", str(folder), *argv]
    assert _prune(argv, tmp_path) == 2
    assert message in capsys.readouterr().err


def test_options_are_named_by_their_flags():
    from pait.errors import ConfigError
    from pait.prune.options import PruneOptions

    with pytest.raises(ConfigError, match="^--score-option: expected a mapping"):
        PruneOptions("x", score_options=[1]).validate()
    with pytest.raises(ConfigError, match="^--round-to 2 needs --structure"):
        PruneOptions("x", round_to=2, device="cpu").validate()
    with pytest.raises(ConfigError, match=r"^r\.json: options\.round_to 2 needs options\.structure"):
        PruneOptions("x", round_to=2, device="cpu").validate(where="r.json")


def test_a_folder_with_one_class_is_rejected(tmp_path, capsys):
    (tmp_path / "data" / "only").mkdir(parents=True)  # the data beside --out (tmp_path/x), not holding it
    Image.new("RGB", (16, 16)).save(tmp_path / "data" / "only" / "a.png")
    assert _prune(["--data", str(tmp_path / "data")], tmp_path) == 2
    assert "at least 2 are needed" in capsys.readouterr().err


def test_an_unknown_score_is_rejected():
    with pytest.raises(ValueError, match="unknown score"):
        PruneOptions(ENCODER, score="nope").validate()


def test_score_options_reach_the_score(folder, tmp_path):
    def mask(seed):
        prune(folder, tmp_path / str(seed), "--score", "random", "--sparsity", "0.5", "--recovery", "none",
              "--score-option", f"seed={seed}")
        return load_mask(tmp_path / str(seed))

    first, again, other = mask(1), mask(1), mask(2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("recovery", ["sequential", "bn+sequential"])
def test_sequential_recoveries_through_the_command_round_trip_to_a_stock_module(folder, tmp_path, recovery):
    out = tmp_path / recovery
    assert main(["prune", "--encoder", ENCODER, "--data", str(folder), "--sparsity", "0.5", "--recovery", recovery,
                 "--calib-per-class", "5", "--eval-per-class", "3", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["options"]["recovery"] == recovery
    fresh = _stock()
    fresh.load_state_dict(safetensors.torch.load_file(str(out / "pruned.safetensors")))
    params = dict(fresh.named_parameters())
    for name, m in load_mask(out).items():
        assert (params[name][~m] == 0).all()
    assert report["parameters"]["after"]["prunable_nonzero"] <= round(0.5 * sum(m.numel() for m in load_mask(out).values()))


@pytest.mark.parametrize("recovery", RECOVERIES)
def test_nm_through_the_command_with_every_recovery_writes_an_nm_mask_and_zero_pruned_weights(folder, tmp_path, recovery):
    out = tmp_path / "nm"
    assert main(["prune", "--encoder", ENCODER, "--data", str(folder), "--nm", "2:4", "--recovery", recovery,
                 "--score", "magnitude", "--retrain-epochs", "1", "--calib-per-class", "5", "--eval-per-class", "3",
                 "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    dense = report["nm_dense_layers"]
    assert dense == ["0.weight"]  # 27 inputs per row; the others have 72 and 8
    mask = load_mask(out)
    weights = safetensors.torch.load_file(str(out / "pruned.safetensors"))
    assert set(mask) == {"0.weight", "3.weight", "7.weight"}
    for name, keep in mask.items():
        if name in dense:
            assert keep.all(), name
        else:
            assert (keep.reshape(keep.shape[0], -1, 4).sum(-1) == 2).all(), (name, recovery)
        assert (weights[name][~keep] == 0).all(), (name, recovery)
