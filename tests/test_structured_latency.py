"""Latency-targeted structured pruning: the measured latency table (structure, cache, keys) and the width
selection (budget, exactness against brute force, errors). No timing is asserted."""

import copy
import itertools
import types
import json
import math

import numpy as np
import pytest
import torch

from pait.errors import ConfigError
from pait.export.speed import Comparison, compare, interleaved, paired_speedup
from pait.prune.structured import latency
from pait.prune.structured.groups import build_graph, find_groups, remove_units
from pait.prune.structured.latency import (GroupLatency, LatencySetting, LatencyTable, candidate_widths,
                                           latency_table, table_path)
from pait.prune.structured.selection import floor
from pait.prune.structured.widths import (Option, best_reachable_speedup, check_target, choose_widths, kept_scores,
                                          latency_targeted_removals, outcome, removals_for_widths, calibrated,
                                          closest)
from test_structured import tiny_efficientnet, tiny_vit

FAST = {"repeats": 2, "inner": 1, "max_widths": 3}


def _random_options(rng, groups, widths, grid=None):
    options = []
    for _ in range(groups):
        scores = np.sort(rng.uniform(0, 1, widths))  # wider keeps more score
        savings = np.sort(rng.uniform(-0.2, 1.0, widths))[::-1]  # the first (narrowest) saves most
        if grid is not None:
            savings = np.round(savings / grid) * grid
        savings[-1] = 0.0  # the last width is the dense one
        options.append([Option(w, float(s), float(d)) for w, (s, d) in enumerate(zip(scores, savings))])
    return options


def _brute_force(options, required, margin=0.0):
    """Best total score over every combination whose saving is at least ``required + margin``."""
    best = -math.inf
    for combo in itertools.product(*options):
        if sum(o.saving for o in combo) >= required + margin:
            best = max(best, sum(o.score for o in combo))
    return best


@pytest.mark.parametrize("seed", range(6))
def test_width_choice_matches_brute_force_on_a_tiny_case(seed):
    rng = np.random.default_rng(seed)
    groups, widths = 3 + seed % 2, 3 + (seed // 2) % 2
    dense = 10.0
    # savings on the DP's grid (multiples of required / bins): the rounding is then exact, the optimum found
    target = 1.0 + rng.uniform(0.03, 0.08)
    required = dense - dense / target
    options = _random_options(rng, groups, widths, grid=required / 40)
    chosen = choose_widths(options, dense, target, bins=40)
    assert sum(o.saving for o in chosen) >= required * (1 - 1e-12)
    assert sum(o.score for o in chosen) == pytest.approx(_brute_force(options, required * (1 - 1e-9)), abs=1e-12)
    # arbitrary float savings: feasible, no better than the optimum, no worse than the optimum with the
    # rounding margin (groups x delta) added to the requirement
    options = _random_options(rng, groups, widths)
    target = 1 + (best_reachable_speedup(options, dense) - 1) * rng.uniform(0.2, 0.8)
    required = dense - dense / target
    bins = 50
    chosen = choose_widths(options, dense, target, bins=bins)
    delta = required / bins
    total = sum(o.score for o in chosen)
    assert sum(o.saving for o in chosen) >= required * (1 - 1e-12)
    assert total <= _brute_force(options, required) + 1e-12
    assert total >= _brute_force(options, required, margin=groups * delta) - 1e-12


def test_width_choice_respects_the_budget_on_a_synthetic_table():
    rng = np.random.default_rng(7)
    options = _random_options(rng, 20, 8)
    dense = 30.0
    for target in (1.1, 1.3, 1.6):
        chosen = choose_widths(options, dense, target)
        assert dense - sum(o.saving for o in chosen) <= dense / target * (1 + 1e-12)
    low = choose_widths(options, dense, 1.1)
    high = choose_widths(options, dense, 1.6)
    assert sum(o.score for o in low) >= sum(o.score for o in high)  # a looser budget keeps at least as much


def test_an_unreachable_target_names_itself_and_the_best_reachable_speedup():
    options = [[Option(1, 0.0, 1.0), Option(2, 1.0, 0.0)], [Option(1, 0.0, 2.0), Option(2, 1.0, 0.0)]]
    with pytest.raises(ConfigError) as err:
        choose_widths(options, 10.0, 2.0)
    message = str(err.value)
    assert "target_speedup 2.0" in message and "1.429x" in message and "\n" not in message  # 10 / (10 - 3)


def test_the_most_the_table_allows_is_met_by_every_largest_saving_despite_the_rounding():
    rng = np.random.default_rng(1)
    options = [[Option(w, float(rng.random()), float(s)) for w, s in enumerate(rng.random(4) / 7)] for _ in range(23)]
    most = max(o.saving for o in options[0])
    best = best_reachable_speedup(options, 10.0)
    chosen = choose_widths(options, 10.0, best)  # the ceiling itself: the rounded DP has no feasible state
    assert [o.saving for o in chosen] == [max(o.saving for o in g) for g in options] and most > 0
    assert 10.0 / (10.0 - sum(o.saving for o in chosen)) >= best * (1 - 1e-12)


@pytest.mark.parametrize("target", [1.0, 0.5, -2, float("nan"), "fast", None])
def test_a_target_speedup_not_above_one_is_a_one_line_config_error(target):
    with pytest.raises(ConfigError) as err:
        check_target(target)
    assert repr(target) in str(err.value) and "\n" not in str(err.value)


def test_kept_scores_are_the_sums_of_the_highest_unit_scores_and_removals_keep_those_units():
    scores = torch.tensor([0.3, -0.1, 2.0, 0.7, 0.7], dtype=torch.float64)
    for w in range(6):
        brute = max(sum(scores[list(c)].tolist()) for c in itertools.combinations(range(5), w)) if w else 0.0
        assert kept_scores(scores, [w]) == [pytest.approx(brute, abs=1e-15)]
    removed = removals_for_widths([scores], [2])[0]
    assert removed == [0, 1, 3]  # the tie between units 3 and 4: the lower index goes first
    assert float(scores[[u for u in range(5) if u not in removed]].sum()) == kept_scores(scores, [2])[0]


def test_candidate_widths_are_rounded_above_the_floor_and_end_with_the_dense_width():
    model = tiny_efficientnet()
    graph = build_graph(model, torch.zeros(1, 3, 32, 32, dtype=torch.float64))
    for group in find_groups(model, graph, ("classifier",)):
        for round_to, most in ((1, 100), (4, 100), (8, 3)):
            widths = candidate_widths(group, round_to, max_widths=most)
            assert widths[-1] == group.units and widths == sorted(set(widths)) and len(widths) <= most
            assert all(w >= floor(group.units) for w in widths)
            assert all(w % round_to == 0 for w in widths[:-1])
            if most == 100:
                assert len(widths) == len([w for w in range(1, group.units) if w % round_to == 0
                                           and w >= floor(group.units)]) + 1


def _table(model, heads, size, tmp_path, runtime, **kw):
    setting = LatencySetting(runtime=runtime, threads=1, input_size=size, **(FAST | kw))
    return setting, latency_table(model, heads, setting, tmp_path, show_progress=False)


@pytest.mark.parametrize("runtime,estimator", [("torch", "median"), ("onnxruntime", "min")])
def test_a_measured_table_has_every_group_and_width_and_is_read_back_from_its_cache(runtime, estimator, tmp_path,
                                                                                    monkeypatch):
    model = tiny_efficientnet()
    setting, table = _table(model, ("classifier",), 32, tmp_path, runtime, round_to=4, estimator=estimator)
    groups = find_groups(model, build_graph(model, torch.zeros(1, 3, 32, 32, dtype=torch.float64)), ("classifier",))
    assert [g.name for g in table.groups] == [g.name for g in groups]
    for row, group in zip(table.groups, groups):
        assert row.widths == candidate_widths(group, 4, max_widths=3)
        assert len(row.saving_ms) == len(row.latency_ms) == len(row.spread_ms) == len(row.widths)
        assert row.saving_ms[-1] == 0.0 and row.spread_ms[-1] == [0.0, 0.0]
    assert table.dense_ms > 0 and table.predicted_ms([g.units for g in table.groups]) == table.dense_ms
    key = table.key
    assert key["setting"]["runtime"] == runtime and key["setting"]["round_to"] == 4
    assert key["setting"]["estimator"] == estimator
    assert set(key["machine"]) == {"cpu", "cores", "torch", "onnxruntime"}
    files = list(tmp_path.iterdir())
    assert files == [table_path(tmp_path, key)] and json.loads(files[0].read_text())["key"] == key
    monkeypatch.setattr(latency, "measure_table", lambda *a, **k: pytest.fail("measured again"))
    again = latency_table(model, ("classifier",), setting, tmp_path, show_progress=False)
    assert again == table
    other = LatencySetting(**(setting.__dict__ | {"batch": 2}))
    assert table_path(tmp_path, latency.table_key(model, groups, other)) != files[0]


def test_a_damaged_cached_table_is_measured_again(tmp_path):
    model = tiny_efficientnet()
    setting, table = _table(model, ("classifier",), 32, tmp_path, "torch")
    path = table_path(tmp_path, table.key)
    path.write_text(path.read_text()[:40])  # as if cut short by hand: the writer itself is atomic
    _, again = _table(model, ("classifier",), 32, tmp_path, "torch")
    assert [g.widths for g in again.groups] == [g.widths for g in table.groups]
    assert LatencyTable.from_json(path.read_text()).key == table.key


def test_table_prediction_is_dense_minus_the_summed_savings():
    table = LatencyTable({}, 10.0, [GroupLatency("a", "channels", 4, [2, 4], [1.5, 0.0]),
                                    GroupLatency("b", "channels", 8, [4, 8], [-0.25, 0.0])])
    assert table.predicted_ms([2, 8]) == 8.5
    assert table.predicted_ms([4, 4]) == 10.25
    with pytest.raises(ValueError, match="3 is not a measured width of a"):
        table.predicted_ms([3, 4])
    assert LatencyTable.from_json(table.to_json()) == table


def _synthetic_table(groups):
    """Savings proportional to the units removed: a table with a reachable 1.5x."""
    rows = []
    for g in groups:
        widths = candidate_widths(g, 1, max_widths=4)
        rows.append(GroupLatency(g.name, g.kind, g.units, widths, [(g.units - w) / g.units for w in widths]))
    return LatencyTable({}, len(groups) * 1.0, rows)


def test_a_table_whose_savings_exceed_the_dense_latency_is_refused_as_timing_noise():
    model = tiny_efficientnet()
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    groups = find_groups(model, build_graph(model, x), ("classifier",))
    scores = [torch.ones(g.units, dtype=torch.float64) for g in groups]
    noisy = _synthetic_table(groups)
    noisy = LatencyTable({}, 0.5, noisy.groups)  # every group's saving alone is up to 2x the dense latency
    with pytest.raises(ConfigError, match="timing noise") as err:
        latency_targeted_removals(noisy, groups, scores, 1.5)
    assert "\n" not in str(err.value) and "0.500 ms" in str(err.value)


@pytest.mark.parametrize("case", ["efficientnet", "vit"])
def test_latency_targeted_removals_meet_the_predicted_budget_and_prune(case):
    model = tiny_efficientnet() if case == "efficientnet" else tiny_vit()
    size, heads = (32, ("classifier",)) if case == "efficientnet" else (28, ("head",))
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    graph = build_graph(model, x[:1])
    groups = find_groups(model, graph, heads)
    if case == "vit":
        assert {g.kind for g in groups} == {"heads", "neurons"}
    scores = [torch.rand(g.units, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
              for i, g in enumerate(groups)]
    table = _synthetic_table(groups)
    removed, plan = latency_targeted_removals(table, groups, scores, 1.5)
    assert plan["predicted_ms"] <= table.dense_ms / 1.5 * (1 + 1e-12)
    assert [g.units - len(r) for g, r in zip(groups, removed)] == [row["kept"] for row in plan["groups"]]
    remove_units(model, graph, groups, removed)
    assert model(x).shape[0] == 2
    with pytest.raises(ValueError, match="other groups"):
        latency_targeted_removals(table, groups[1:], scores[1:], 1.5)


def test_vit_heads_and_neurons_get_a_measured_table_in_onnx_runtime(tmp_path):
    model = tiny_vit()
    _, table = _table(model, ("head",), 28, tmp_path, "onnxruntime")
    kinds = [g.kind for g in table.groups]
    assert kinds.count("heads") == 2 and kinds.count("neurons") == 2
    heads = next(g for g in table.groups if g.kind == "heads")
    assert heads.units == 4 and heads.widths[-1] == 4 and all(w >= 1 for w in heads.widths)
    groups = find_groups(model, build_graph(model, torch.zeros(1, 3, 28, 28, dtype=torch.float64)), ("head",))
    # the measured savings depend on the machine: select on savings proportional to the units removed
    for row in table.groups:
        row.saving_ms = [table.dense_ms * (row.units - w) / row.units / len(table.groups) for w in row.widths]
    scores = [torch.rand(g.units, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
              for i, g in enumerate(groups)]
    removed, plan = latency_targeted_removals(table, groups, scores, 1.4, saving="median")
    assert plan["predicted_ms"] <= table.dense_ms / 1.4 * (1 + 1e-12)
    assert any(r for g, r in zip(groups, removed) if g.kind == "heads")
    pruned = copy.deepcopy(model)
    graph = build_graph(pruned, torch.zeros(1, 3, 28, 28, dtype=torch.float64))
    remove_units(pruned, graph, find_groups(pruned, graph, ("head",)), removed)
    result = outcome(plan, compare(model, pruned, "onnxruntime", 1, 1, 28, repeats=2, inner=1))
    assert result["target_speedup"] == 1.4 and result["predicted_speedup"] == plan["predicted_speedup"]
    assert result["met"] == (result["achieved_speedup"] >= 1.4)


def test_compare_times_both_modules_and_carries_the_target():
    model = tiny_efficientnet()
    result = compare(model, model, "onnxruntime", 1, 1, 32, repeats=3, inner=1, target=1.5)
    assert isinstance(result, Comparison) and result.target == 1.5 and result.repeats == 3
    assert result.speedup_min <= result.speedup <= result.speedup_max and result.dense_ms > 0
    assert result.as_dict()["achieved"] == result.speedup
    with pytest.raises(ConfigError, match="runtime 'tensorrt' is not one of"):
        compare(model, model, "tensorrt", 1, 1, 32)


def test_interleaved_timing_runs_every_function_once_per_repeat_in_order():
    calls = []
    times = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, {"a": 1, "b": 2})
    assert calls == ["a", "b", "b"] * 4 and [len(v) for v in times.values()] == [3, 3]  # warm-up + 3 repeats
    assert paired_speedup([2.0, 4.0, 3.0], [1.0, 1.0, 2.0]) == (1.5, 2.0, 4.0)


def _measured(curve, asked):
    """An ``attempt`` whose measured speed-up is ``curve(predicted)``; the asks are appended to ``asked``."""
    def attempt(t):
        asked.append(t)
        m = curve(t)
        return {"target_speedup": t, "predicted_speedup": t}, Comparison("torch", 1, 1, 8, 3, 1.0, 1.0 / m, m, m, m)
    return attempt


def test_a_pessimistic_table_is_corrected_down_until_the_measurement_is_within_tolerance():
    asked = []
    results = calibrated(_measured(lambda t: t ** 1.6, asked), 1.5, reachable=3.0)  # 1.5 predicted -> 1.91 measured
    assert asked[0] == 1.5 and asked[1] == pytest.approx(1.5 * 1.5 / 1.5 ** 1.6) and asked[1] < asked[0]
    assert abs(results[-1]["achieved_speedup"] / 1.5 - 1) <= 0.05 and len(results) <= 4
    assert all(r["target_speedup"] == 1.5 for r in results) and closest(results) == len(results) - 1


def test_an_optimistic_table_is_corrected_up_and_bracketing_attempts_are_interpolated():
    asked = []
    results = calibrated(_measured(lambda t: t / 1.2, asked), 1.5, reachable=2.0)
    assert asked == [1.5, pytest.approx(1.8)] and results[-1]["achieved_speedup"] == pytest.approx(1.5)
    asked = []  # 1.3 -> 1.0833 (below), then 1.3 x 1.5 / 1.0833 = 1.8 -> 1.5 (within)
    calibrated(_measured(lambda t: t / 1.2, asked), 1.5, reachable=2.0, tolerance=0.0)
    assert len(asked) == 2  # exact on the second: no third attempt
    asked = []  # measured curve steeper than the ratio rule: the third ask interpolates the bracket in log space
    calibrated(_measured(lambda t: t ** 3 / 2, asked), 1.5, reachable=3.0, tolerance=0.001, rounds=3)
    (a0, m0), (a1, m1) = sorted((a, a ** 3 / 2) for a in asked[:2])
    w = (math.log(1.5) - math.log(m0)) / (math.log(m1) - math.log(m0))
    assert m0 < 1.5 < m1 and asked[2] == pytest.approx(math.exp(math.log(a0) + w * (math.log(a1) - math.log(a0))))


def test_the_table_most_measured_short_is_not_reachable_and_one_round_is_one_attempt():
    asked = []
    with pytest.raises(ConfigError, match=r"target_speedup 1.8 is not reachable: the fastest widths the per-group "
                                          r"floors allow measured 1.333x \(predicted 1.600x\)"):
        calibrated(_measured(lambda t: t / 1.2, asked), 1.8, reachable=1.6)
    assert asked == [1.6]  # the most is asked at once, and not asked twice
    assert len(calibrated(_measured(lambda t: t / 1.2, []), 1.5, reachable=2.0, rounds=1)) == 1
    results = calibrated(_measured(lambda t: t * 1.02, []), 1.5, reachable=1.6)  # within 5%: kept, not an error
    assert len(results) == 1 and results[0]["achieved_speedup"] == pytest.approx(1.53)


def test_closest_is_nearest_on_a_log_scale_and_the_faster_on_a_tie():
    attempts = [{"target_speedup": 1.5, "achieved_speedup": a} for a in (1.2, 1.5 * 1.5 / 1.2, 1.55)]
    assert closest(attempts) == 2
    assert closest(attempts[:2]) == 1  # 1.2 and 1.875 are equally far from 1.5 on a log scale


@pytest.mark.parametrize("case", ["efficientnet", "vit"])
def test_a_narrowed_copy_cuts_only_its_group_to_the_width(case):
    model = tiny_efficientnet() if case == "efficientnet" else tiny_vit()
    size, heads = (32, ("classifier",)) if case == "efficientnet" else (28, ("head",))
    before = [sum(p.numel() for p in model.parameters()), {k: v.clone() for k, v in model.state_dict().items()}]
    example = torch.zeros(1, 3, size, size, dtype=torch.float64)
    groups = find_groups(model, build_graph(model, example), heads)
    for index in (0, len(groups) - 1):
        keep = max(1, groups[index].units // 2)
        cut = latency.narrowed(model, heads, index, keep, size)
        widths = [g.units for g in find_groups(cut, build_graph(cut, example), heads)]
        assert widths == [keep if i == index else g.units for i, g in enumerate(groups)]
    assert sum(p.numel() for p in model.parameters()) == before[0]  # the model itself is untouched
    assert all(torch.equal(v, before[1][k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("field,value,message", [("runtime", "tensorrt", "latency runtime 'tensorrt'"),
                                                 ("threads", 0, "latency threads must be"),
                                                 ("estimator", "mean", "latency estimator 'mean'"),
                                                 ("max_widths", 1, "latency max_widths must be")])
def test_a_bad_latency_setting_is_a_config_error_naming_the_field(field, value, message):
    with pytest.raises(ConfigError, match=message):
        LatencySetting(**{field: value}).validate()


def test_the_lower_quartile_saving_is_the_default_and_the_median_is_available():
    table = LatencyTable({}, 10.0, [
        GroupLatency("a", "channels", 4, [2, 4], [3.0, 0.0], spread_ms=[[1.0, 4.0], [0, 0]]),
        GroupLatency("b", "channels", 4, [2, 4], [2.0, 0.0], spread_ms=[[2.0, 2.1], [0, 0]])])
    groups = [types.SimpleNamespace(name=g.name, units=g.units) for g in table.groups]
    scores = [torch.tensor([1.0, 1.0, 2.0, 2.0], dtype=torch.float64), torch.tensor([1.5, 1.5, 3.0, 3.0])]
    # 1.25x needs 2 ms: by the medians narrowing a (3 ms, score 2 lost) beats b (2 ms, score 3 lost); by the
    # lower quartiles a saves 1 ms only, so b is narrowed
    removed, plan = latency_targeted_removals(table, groups, scores, 1.25, saving="median")
    assert [r["kept"] for r in plan["groups"]] == [2, 4]
    removed, plan = latency_targeted_removals(table, groups, scores, 1.25)
    assert plan["saving"] == "lower_quartile" and [r["kept"] for r in plan["groups"]] == [4, 2]
    assert plan["predicted_ms"] == pytest.approx(10.0 - 2.0) and removed == [[], [0, 1]]
    with pytest.raises(ConfigError, match="saving 'mean'"):
        latency_targeted_removals(table, groups, scores, 1.25, saving="mean")


def test_a_measured_table_records_when_and_under_what_load_and_reads_back(tmp_path, monkeypatch):
    model = tiny_efficientnet().float()
    setting = latency.LatencySetting("torch", 1, 1, 32, round_to=8, repeats=1, inner=1)
    table = latency.latency_table(model, ("classifier",), setting, tmp_path, show_progress=False)
    measured = table.measured
    assert set(measured) == {"started", "seconds", "loadavg_before", "loadavg_after"} and measured["seconds"] > 0
    assert len(measured["loadavg_before"]) == 3 and measured["started"].endswith("Z")
    monkeypatch.setattr(latency, "measure_table", lambda *a, **k: pytest.fail("measured again"))
    again = latency.latency_table(model, ("classifier",), setting, tmp_path, show_progress=False)
    assert again.measured == measured and again.key == table.key
    old = json.loads(next(tmp_path.glob("latency-*.json")).read_text())
    del old["measured"]  # a table written before the field: still read, with nothing recorded
    assert latency.LatencyTable.from_json(json.dumps(old)).measured == {}
