"""`pait prune` with transfer probes and INT8 export: per-probe accuracy before (the head fit on the unpruned
encoder) and after (the same frozen head on the pruned encoder), the default probes, `--no-probes`,
pruned.int8.onnx beside the checkpoint and its report entry, and the probes' data stage reused by a rerun."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import onnx
import pytest
import torch
from colour_images import write_colour_folder
from test_probes import write_probe_folder

import test_prune  # noqa: F401  (registers the tiny conv net)
import test_structured_prune  # noqa: F401  (registers the tiny EfficientNet-like net)
from pait.cli import main
from pait.encoders import build_encoder
from pait.config import EncoderConfig
from pait.export.structured import INT8_FILE
from pait.errors import DataError
from pait.prune.data import folder_task
from pait.prune.probes import fit_probes, probe_sets

COMMON = ["--calib-per-class", "3", "--eval-per-class", "2", "--batch-size", "8", "--device", "cpu",
          "--recovery", "none"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe-folders")
    (root / "data16").mkdir()
    (root / "data32").mkdir()
    return {"data16": write_colour_folder(root / "data16", 16), "data32": write_colour_folder(root / "data32", 32),
            "warm": write_probe_folder(root / "warm"),
            "cool": write_probe_folder(root / "cool", colours=((40, 40, 220), (40, 160, 40), (200, 40, 200)))}


def prune(data: Path, encoder: str, out: Path, cache: Path, *flags: str) -> dict:
    """`pait prune` of ``encoder`` on ``data`` into ``out``; its report."""
    assert main(["prune", "--encoder", encoder, "--data", str(data), *COMMON, "--out", str(out), "--cache", str(cache),
                 *flags]) == 0
    return json.loads((out / "report.json").read_text())


def logged(cache: Path) -> list[tuple[str, str]]:
    (log,) = cache.glob("prune-*/stages.log")
    return [(e["stage"], e["key"]) for e in map(json.loads, log.read_text().splitlines())]


def test_probe_folders_are_measured_before_and_after_through_heads_fit_on_the_unpruned_encoder(folders, tmp_path,
                                                                                               capsys):
    flags = ["--score", "magnitude", "--sparsity", "0.7", "--probe", str(folders["warm"]), "--probe",
             str(folders["cool"])]
    report = prune(folders["data16"], test_prune.ENCODER, tmp_path / "out", tmp_path / "cache", *flags)
    assert [p["name"] for p in report["probes"]] == ["warm", "cool"]
    assert [len(p["classes"]) for p in report["probes"]] == [2, 3]
    # the reference: the same probes, decoded in memory, heads fit on a freshly built (unpruned) encoder
    sets, note = probe_sets([folders["warm"], folders["cool"]], None, folders["data16"], folder_task(folders["data16"]),
                            3, 2, seed=0)
    unpruned = build_encoder(EncoderConfig(test_prune.ENCODER))
    reference = fit_probes(unpruned, sets, 8, CPU)
    assert [p["before"] for p in report["probes"]] == [p.before for p in reference]
    assert [(p["calibration"], p["evaluation"]) for p in report["probes"]] == [(6, 4), (9, 6)]
    assert report["probe_summary"]["note"] == note and report["probe_summary"]["count"] == 2
    # after: the frozen heads on the pruned checkpoint
    pruned = build_encoder(EncoderConfig(test_prune.ENCODER))
    pruned.model.load_state_dict(test_prune.safetensors.torch.load_file(str(tmp_path / "out" / "pruned.safetensors")))
    from pait.prune.probes import encoder_features, probe_accuracies

    assert [p["after"] for p in report["probes"]] == probe_accuracies(reference, encoder_features(pruned, 8, CPU))
    assert "| warm | 2 | 6 | 4 |" in (tmp_path / "out" / "report.md").read_text()
    assert "2 transfer probe(s): accuracy" in " ".join(capsys.readouterr().err.split())  # rich wraps the line
    assert "int8" not in report and not (tmp_path / "out" / INT8_FILE).exists()


def test_default_probes_their_data_stage_is_reused_and_no_probes_gives_none(folders, tmp_path):
    cache = tmp_path / "cache"
    report = prune(folders["data16"], test_prune.ENCODER, tmp_path / "a", cache, "--score", "magnitude")
    assert [p["name"] for p in report["probes"]] == ["digits-0-4", "digits-5-9", "clothing-a", "clothing-b"]
    assert report["probe_summary"]["note"].startswith("Default probes: the embedded suite's tasks")
    first = logged(cache)
    assert [stage for stage, _ in first].count("data") == 2  # the probes' and the pruning folder's
    again = prune(folders["data16"], test_prune.ENCODER, tmp_path / "a", cache, "--score", "magnitude")
    assert logged(cache) == first and max(Counter(first).values()) == 1  # a rerun computes nothing
    assert again["probes"] == report["probes"]
    none = prune(folders["data16"], test_prune.ENCODER, tmp_path / "b", cache, "--score", "magnitude", "--no-probes")
    assert none["probes"] == [] and none["probe_summary"]["count"] == 0
    assert "No probe" in (tmp_path / "b" / "report.md").read_text()


@pytest.mark.parametrize("structure", ["weights", "channels"])
def test_int8_writes_a_qdq_model_and_its_report_entry(folders, tmp_path, structure):
    if structure == "weights":
        data, encoder, flags = folders["data16"], test_prune.ENCODER, ["--score", "magnitude", "--sparsity", "0.5"]
    else:
        data, encoder = folders["data32"], test_structured_prune.ENCODER
        flags = ["--structure", "channels", "--ratio", "0.5", "--score", "magnitude", "--onnx"]
    out = tmp_path / "out"
    report = prune(data, encoder, out, tmp_path / "cache", *flags, "--probe", str(folders["warm"]), "--int8",
                   "--int8-activations", "qint8")
    graph = onnx.load(str(out / INT8_FILE)).graph
    ops = Counter(n.op_type for n in graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0  # QDQ format
    entry = report["int8"]
    assert entry["file"] == INT8_FILE and entry["format"] == "QDQ"
    assert entry["quantization"]["activation_types"] == ["int8"]
    assert [p["name"] for p in entry["accuracy"]["probes"]] == ["warm"]
    # the fp32 ONNX model computes the torch features: its accuracies are the report's "after" ones
    assert entry["accuracy"]["source"]["fp32"] == pytest.approx(report["accuracy"]["after"])
    assert entry["accuracy"]["probes"][0]["fp32"] == pytest.approx(report["probes"][0]["after"])
    assert [r["batch"] for r in entry["latency"]["rows"]] == [1, 32]
    assert entry["latency"]["threads"] == torch.get_num_threads()
    text = (out / "report.md").read_text()
    assert "## INT8 model" in text and "| probe warm |" in text and "## Transfer probes" in text


def test_default_probes_with_too_few_images_for_the_split_are_left_out_but_an_asked_for_probe_is_refused(folders,
                                                                                                           tmp_path):
    from pait.grid.practitioner import check_probe_splits

    data = folders["data16"]
    sets, note = probe_sets([], None, data, folder_task(data), 499, 2, seed=0)  # 500 images per embedded class
    kept, why = check_probe_splits(sets, note)
    assert kept == [] and why.startswith("No probe: the default probes have too few images")
    asked, note = probe_sets([folders["warm"]], None, data, folder_task(data), 6, 1, seed=0)
    with pytest.raises(DataError, match=f"--probe {folders['warm']}: task 'warm'"):
        check_probe_splits(asked, note)
    enough, note = probe_sets([folders["warm"]], None, data, folder_task(data), 5, 1, seed=0)
    assert check_probe_splits(enough, note) == (enough, note)


def test_the_int8_activation_choices_are_the_exporters():
    from pait.export.int8 import ACTIVATION_TYPES, DEFAULT_ACTIVATIONS
    from pait.prune.options import INT8_ACTIVATIONS, PruneOptions

    assert sorted(INT8_ACTIVATIONS) == sorted(ACTIVATION_TYPES)
    assert PruneOptions("e").int8_activations == INT8_ACTIVATIONS[0] == DEFAULT_ACTIVATIONS
