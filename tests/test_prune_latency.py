"""`pait prune --target-speedup`: a channel unit whose axis is a target speed-up. The widths are exactly the
ones latency_targeted_removals picks from the (here synthetic) latency table and the cached group scores,
the report carries target / predicted / achieved, and a rerun reuses the cached table and unit. The timing is
a deterministic stand-in (the ratio of parameter counts), so the measured search is checked on known answers."""

from __future__ import annotations

import copy
import json

import pytest
import safetensors.torch
import torch
from colour_images import write_colour_folder

import test_structured_prune
from pait.cli import main
from pait.export import speed
from pait.export.speed import Comparison
from pait.prune.structured import latency
from pait.prune.structured.groups import build_graph, find_groups
from pait.prune.structured.latency import GroupLatency, LatencySetting, LatencyTable, candidate_widths, table_key
from pait.prune.structured.widths import ROUNDS, TOLERANCE, latency_targeted_removals
from test_structured import tiny_efficientnet

HEADS = ("classifier",)


def synthetic_table(model, head_prefixes, setting, show_progress=True):
    """A table of the real groups: 1 ms per group dense, each group's saving its fraction of units removed
    (as ``measure_table`` returns it, keyed the same)."""
    model = copy.deepcopy(model).float().cpu().eval()
    groups = find_groups(model, build_graph(model, torch.zeros(1, 3, setting.input_size, setting.input_size)),
                         head_prefixes)
    rows = []
    for g in groups:
        widths = candidate_widths(g, setting.round_to, setting.min_keep, setting.max_widths)
        savings = [(g.units - w) / g.units for w in widths]
        rows.append(GroupLatency(g.name, g.kind, g.units, widths, savings, spread_ms=[[s, s] for s in savings]))
    return LatencyTable(table_key(model, groups, setting), float(len(groups)), rows)


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def by_parameters(dense, pruned, runtime, threads, batch, input_size, *args, **kwargs):
    """A deterministic stand-in for ``compare``: the speed-up is the ratio of parameter counts."""
    s = params(dense) / params(pruned)
    return Comparison(runtime, threads, batch, input_size, 1, 1.0, 1.0 / s, s, s, s)


@pytest.fixture
def timing(monkeypatch):
    """Every timing of the measured search and of the final module through ``by_parameters``."""
    monkeypatch.setattr(speed, "compare", by_parameters)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_colour_folder(tmp_path_factory.mktemp("images"), 32)


def _prune(folder, out, cache, *argv):
    return main(["prune", "--encoder", test_structured_prune.ENCODER, "--data", str(folder), "--calib-per-class", "5",
                 "--eval-per-class", "3", "--device", "cpu", "--batch-size", "8", "--no-probes", "--out", str(out),
                 "--cache", str(cache), "--structure", "channels", "--score", "magnitude", *argv])


def _logged(cache):
    (log,) = cache.glob("prune-*/stages.log")
    return [(e["stage"], e["key"]) for e in map(json.loads, log.read_text().splitlines())]


def test_a_target_speedup_prunes_to_the_chosen_widths_reports_them_and_reruns_from_cache(folder, tmp_path,
                                                                                       monkeypatch, timing):
    monkeypatch.setattr(latency, "measure_table", synthetic_table)
    cache = tmp_path / "cache"
    assert _prune(folder, tmp_path / "out", cache, "--target-speedup", "1.5", "--recovery", "none") == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    options = report["options"]
    assert (options["round_to"], options["latency_runtime"], options["latency_threads"],
            options["latency_batch"]) == (8, "onnxruntime", 2, 1)  # the defaults with --target-speedup

    setting = LatencySetting("onnxruntime", 2, 1, 32, round_to=8)
    table = synthetic_table(tiny_efficientnet().float(), HEADS, setting)
    (tables,) = (cache / "stages" / "latency").glob("latency-*.json")
    assert LatencyTable.from_json(tables.read_text()).key == table.key
    model = tiny_efficientnet().float()
    groups = find_groups(model, build_graph(model, torch.zeros(1, 3, 32, 32)), HEADS)
    (scores_file,) = (cache / "stages" / "scores").glob("*/scores.safetensors")
    scores = safetensors.torch.load_file(str(scores_file))
    block = report["latency"]
    attempts = block["plan"]["attempts"]
    kept = attempts[block["plan"]["kept_attempt"]]
    assert attempts[0]["asked_speedup"] == 1.5 and 1 <= len(attempts) <= 4
    removed, plan = latency_targeted_removals(table, groups, [scores[g.name] for g in groups], kept["asked_speedup"])
    assert [g["kept"] for g in report["groups"]] == [g.units - len(r) for g, r in zip(groups, removed)]
    assert [g["kept"] for g in report["groups"]] == [g["kept"] for g in plan["groups"]]
    assert kept["achieved_speedup"] == pytest.approx(report["size"]["params_before"] / report["size"]["params_after"])
    for before, after in zip(attempts, attempts[1:]):  # each ask corrects the last measurement towards 1.5
        assert (after["asked_speedup"] - before["asked_speedup"]) * (1.5 - before["achieved_speedup"]) > 0

    assert block["target_speedup"] == 1.5 and block["predicted_speedup"] == pytest.approx(plan["predicted_speedup"])
    assert block["timing"]["runtime"] == "onnxruntime" and block["timing"]["input_size"] == 32
    assert block["achieved_speedup"] > 0 and block["achieved_min"] <= block["achieved_speedup"] <= block["achieved_max"]
    assert block["prediction_error"] == pytest.approx(block["achieved_speedup"] / block["predicted_speedup"] - 1)
    line = next(s for s in (tmp_path / "out" / "report.md").read_text().splitlines() if s.startswith("Latency:"))
    assert line.startswith("Latency: target 1.50x, achieved ") and "in onnxruntime, 2 threads, batch 1, 32 px" in line

    stages = _logged(cache)
    assert [s for s, _ in stages] == ["data", "heads", "scores", "unit"]
    monkeypatch.setattr(latency, "measure_table", lambda *a, **k: pytest.fail("measured again"))
    assert _prune(folder, tmp_path / "again", cache, "--target-speedup", "1.5", "--recovery", "none") == 0
    assert _logged(cache) == stages  # the cached unit: nothing computed, nothing timed
    assert json.loads((tmp_path / "again" / "report.json").read_text())["latency"] == block


def test_a_different_target_is_another_unit_that_reads_the_cached_table(folder, tmp_path, monkeypatch, timing):
    monkeypatch.setattr(latency, "measure_table", synthetic_table)
    cache = tmp_path / "cache"
    assert _prune(folder, tmp_path / "a", cache, "--target-speedup", "1.5", "--recovery", "none") == 0
    monkeypatch.setattr(latency, "measure_table", lambda *a, **k: pytest.fail("measured again"))
    assert _prune(folder, tmp_path / "b", cache, "--target-speedup", "2", "--recovery", "none") == 0
    logs = sorted(cache.glob("prune-*/stages.log"))  # one run folder per target
    units = {e["key"] for log in logs for e in map(json.loads, log.read_text().splitlines()) if e["stage"] == "unit"}
    assert len(logs) == 2 and len(units) == 2
    kept = [sum(g["kept"] for g in json.loads((tmp_path / d / "report.json").read_text())["groups"]) for d in "ab"]
    assert kept[1] <= kept[0]


def test_the_runtimes_of_the_command_line_are_the_timed_ones_and_the_help_names_the_library_defaults():
    from pait.export.speed import RUNTIMES
    from pait.prune.options import LATENCY_RUNTIMES, PruneOptions

    assert LATENCY_RUNTIMES == RUNTIMES
    setting = LatencySetting()
    (field,) = [f for f in PruneOptions.__dataclass_fields__.values() if f.name == "target_speedup"]
    text = field.metadata["flag"].help
    assert f"{setting.repeats} repeats of {setting.inner} calls" in text and f"at most {setting.max_widths} widths" in text
    assert f"up to {ROUNDS} cut copies" in text and f"within {TOLERANCE * 100:g}%% of X" in text


def test_a_channel_grid_with_latency_reads_its_axis_as_target_speedups(folder, tmp_path, monkeypatch, timing):
    from test_prune_grid import grid_of, run_grid

    monkeypatch.setattr(latency, "measure_table", synthetic_table)
    config = grid_of(folder, test_structured_prune.ENCODER, structure="channels", scores=["magnitude"],
                     target_speedups=[1.5], recoveries=["none"], latency={"runtime": "torch", "threads": 1, "batch": 1})
    config["suite"]["options"]["tasks"] = {folder.name: ["class0", "class1", "class2"]}
    _, unit = run_grid(tmp_path, config)
    record = json.loads((unit / "channels.json").read_text())
    assert record["latency"]["target_speedup"] == 1.5 and record["latency"]["timing"]["runtime"] == "torch"
    key = json.loads((unit / "config.json").read_text())
    assert key["sparsity"] == 1.5 and key["latency"]["setting"]["threads"] == 1 and "cpu" in key["latency"]["machine"]
