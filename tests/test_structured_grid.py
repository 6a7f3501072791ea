"""The grid with ``structure: channels``: channel-pruning units beside weight-pruning ones, same results rows."""

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_structured import tiny_efficientnet, tiny_vit

import pait.cache
from pait.config import config_from_dict
from pait.encoders import ENCODERS, Encoder, Preprocessing, register_encoder
from pait.encoders.base import timm_pre_logits
from pait.executors import run_grid
from pait.export.structured import load_structured
from pait.grid.plan import expand, run_dir, unit_id
from pait.report import build_report

TINY_ENCODER, TINY_SUITE = "tiny-test-cnn", "tiny-test-suite"  # registered by tests/conftest.py


def _register_tiny(name: str, description: str, build, input_size: int, feature_dim: int, head: str) -> str:
    """Register a tiny random-weight encoder (once per session) and return its name."""
    if name not in ENCODERS:
        register_encoder(name, description, "none", "random, seeded")(
            lambda weights, trust_torchscript=False: Encoder(name, build().float(),
                                                             Preprocessing(input_size=input_size, crop_pct=1.0),
                                                             feature_dim, timm_pre_logits, (head,)))
    return name


ENCODER = _register_tiny("tiny-structured-grid", "tiny EfficientNet-Lite-like", tiny_efficientnet, 16, 24, "classifier")
VIT = _register_tiny("tiny-structured-grid-vit", "tiny DINOv2-like ViT", tiny_vit, 28, 32, "head")

TARGETS, STAGES = ("task-0", "task-1", "task-2"), ("unpruned", "pruned", "recovered")


def stage_dirs(out: Path) -> set[Path]:
    """Every finished stage directory of the store under ``out``."""
    return {p for p in (out / "stages").glob("*/*") if p.is_dir() and not p.name.startswith(".")}


def channels_config(**changes):
    return config_from_dict({
        "name": "channels", "encoders": [ENCODER], "structure": "channels",
        "suite": {"name": TINY_SUITE, "calib_per_class": 4, "eval_per_class": 4},
        "scores": ["magnitude", "taylor"], "sparsities": [0.25, 0.5], "sources": ["task-0", "task-1"],
        "recoveries": ["bn", "sgd"], "finetune": {"epochs": 1, "lr": 0.01, "milestones": [1], "batch_size": 6},
        "device": "cpu", "precision": "fp32", "save_weights": True, **changes})


@pytest.fixture(scope="module")
def channels_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("channels")
    config = channels_config()
    return out, config, run_grid(config, out, show_progress=False)


def test_every_channel_unit_has_rows_for_every_task_and_stage(channels_run):
    _, _, table = channels_run
    assert len(table) == 2 * 2 * 2 * 2 * len(TARGETS) * len(STAGES)  # scores x ratios x sources x recoveries
    assert set(table.structure) == {"channels"}
    assert table.accuracy.between(0, 1).all() and table.loss.notna().all()
    for _, rows in table.groupby("unit"):
        assert sorted(zip(rows.target, rows.stage)) == sorted((t, s) for t in TARGETS for s in STAGES)
        assert rows.is_source.sum() == len(STAGES)
    assert table.unit.nunique() == 16
    stage = table.set_index(["unit", "target", "stage"]).loss.unstack("stage")
    assert (stage.recovered != stage.pruned).all()  # bn and sgd both change the pruned model


def test_channel_counts_fall_as_the_ratio_grows_and_the_saved_module_is_that_small(channels_run):
    out, config, _ = channels_run
    units = json.loads((run_dir(config, out) / "units.json").read_text())
    assert {u["structure"] for u in units} == {"channels"}
    kept = {}
    for u in units:
        unit_dir = run_dir(config, out) / u["unit_dir"]
        record = json.loads((unit_dir / "channels.json").read_text())
        total = sum(g["units"] for g in record["groups"])
        kept[u["score"], u["source"], u["recovery"], u["sparsity"]] = sum(g["kept"] for g in record["groups"])
        assert record["removed_fraction"]["channels"] == pytest.approx(u["sparsity"], abs=0.02)
        assert record["params"][1] < record["params"][0] and record["macs"][1] < record["macs"][0]
        assert all(g["kept"] >= 1 for g in record["groups"])
        model = load_structured(unit_dir, tiny_efficientnet().float())
        assert sum(p.numel() for p in model.parameters()) == record["params"][1]
        mask = load_file(str(unit_dir / "mask.safetensors"))
        assert {g["name"]: g["kept"] for g in record["groups"]} == {k: int(v.sum()) for k, v in mask.items()}
    for (score, source, recovery, ratio), count in kept.items():
        if ratio == 0.25:
            assert count < total and kept[score, source, recovery, 0.5] < count


def test_a_rerun_recomputes_nothing(channels_run):
    out, config, table = channels_run
    run = run_dir(config, out)
    logged, dirs = (run / "stages.log").read_text(), stage_dirs(out)
    again = run_grid(config, out, show_progress=False)
    assert (run / "stages.log").read_text() == logged and stage_dirs(out) == dirs
    assert again.equals(table)


def test_the_report_reads_a_channels_run(channels_run):
    out, config, _ = channels_run
    md = build_report(run_dir(config, out)).read_text()
    assert "Agreement across sources" in md
    assert "channel ratios: 25.00%, 50.00%" in md and "global masks over" not in md  # the setup says what was cut


def test_weights_units_keep_their_keys(tmp_path, monkeypatch):
    """A config without ``structure`` gives the unit and stage keys computed before the field existed (the
    unit ids of schema 2, under schema 2; the stage keys pinned at schema 4, whose heads key also holds the
    random tiny encoder's weight hash and whose unit keys hold the recovery's options and revision)."""
    config = config_from_dict({
        "name": "keys", "encoders": [TINY_ENCODER], "suite": {"name": TINY_SUITE, "calib_per_class": 4, "eval_per_class": 4},
        "scores": ["magnitude"], "sparsities": [0.5], "sources": ["task-0"], "recoveries": ["none", "sgd"],
        "finetune": {"epochs": 1, "lr": 0.05, "milestones": [1], "batch_size": 6}, "device": "cpu", "precision": "fp32"})
    assert config.structure == "weights"
    table = run_grid(config, tmp_path, show_progress=False)
    assert set(table.structure) == {"weights"}
    units = json.loads((run_dir(config, tmp_path) / "units.json").read_text())
    assert [(u["recovery"], u["unit"], u["unit_dir"], u["scores_dir"]) for u in units] == [
        ("none", "c3e31da74125baa3b358", "../stages/unit/0879bb3b8e5e0c776674", "../stages/scores/e78f4f5db685958e90ec"),
        ("sgd", "43d0356879399162ca40", "../stages/unit/39bb43f806f95b794e45", "../stages/scores/e78f4f5db685958e90ec"),
    ]
    assert all("structure" not in u for u in units)
    assert sorted(set(table.unit)) == sorted(["c3e31da74125baa3b358", "43d0356879399162ca40"])
    monkeypatch.setattr(pait.cache, "SCHEMA_VERSION", 2)
    assert [unit_id(u) for u in expand(config, ["task-0"])] == ["e1e43b99c4a2da047432", "87dae7e4f24f259f906c"]


def test_a_vit_unit_removes_heads_and_neurons_and_sequential_refits_them(tmp_path):
    config = channels_config(encoders=[VIT], scores=["kfac"], sparsities=[0.5], sources=["task-0"],
                             recoveries=["none", "sequential"], save_weights=False)
    table = run_grid(config, tmp_path, show_progress=False)
    assert len(table) == 2 * len(TARGETS) * len(STAGES) and table.accuracy.between(0, 1).all()
    units = json.loads((run_dir(config, tmp_path) / "units.json").read_text())
    record = json.loads((run_dir(config, tmp_path) / units[0]["unit_dir"] / "channels.json").read_text())
    assert record["removed_fraction"] == pytest.approx({"heads": 0.5, "neurons": 0.5}, abs=0.02)
    assert record["params"][1] < record["params"][0]
    refit = next(u for u in units if u["recovery"] == "sequential")
    metrics = json.loads((run_dir(config, tmp_path) / refit["unit_dir"] / "metrics.json").read_text())
    assert metrics["recovery_seconds"] > 0 and metrics["recovered"] != metrics["pruned"]


def test_round_to_keeps_multiples_of_it_in_every_channel_group(tmp_path):
    config = channels_config(scores=["magnitude"], sparsities=[0.5], sources=["task-0"], recoveries=["none"],
                             save_weights=False, round_to=4)
    run_grid(config, tmp_path, show_progress=False)
    unit = json.loads((run_dir(config, tmp_path) / "units.json").read_text())[0]
    groups = json.loads((run_dir(config, tmp_path) / unit["unit_dir"] / "channels.json").read_text())["groups"]
    assert any(g["kept"] < g["units"] for g in groups)
    assert all(g["kept"] % 4 == 0 or g["kept"] == g["units"] for g in groups)
    unrounded = channels_config(scores=["magnitude"], sparsities=[0.5], sources=["task-0"], recoveries=["none"],
                                save_weights=False, name="unrounded")
    run_grid(unrounded, tmp_path, show_progress=False)
    other = json.loads((run_dir(unrounded, tmp_path) / "units.json").read_text())[0]
    assert other["unit_dir"] != unit["unit_dir"] and other["scores_dir"] == unit["scores_dir"]
