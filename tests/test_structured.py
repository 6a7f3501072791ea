import copy
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import timm
import torch
import torch_pruning as tp
from timm.models._efficientnet_builder import decode_arch_def
from timm.models.efficientnet import EfficientNet
from torch import nn

from pait.encoders.base import prunable_parameter_names
from pait.errors import ConfigError
from pait.heads import HeadedModel
from pait.scores import get_score
from pait.export.structured import export_onnx, features_module, load_structured, save_structured
from pait.prune.structured.groups import Group, UnsupportedLayerError, build_graph, find_groups, remove_units
from pait.prune.structured.scores import group_scores, normalized_by_group_mean, summed_scores
from pait.prune.structured.selection import check_ratio, choose_removals, floor

VIT_KWARGS = {"img_size": 28, "depth": 2, "embed_dim": 32, "num_heads": 4, "num_classes": 0}


def tiny_efficientnet() -> nn.Module:
    """EfficientNet-Lite-like (depthwise-separable + inverted residuals with a skip, ReLU6, 'same' padding)."""
    torch.manual_seed(0)
    arch = [["ds_r1_k3_s1_e1_c8"], ["ir_r2_k3_s2_e6_c12"], ["ir_r1_k5_s2_e6_c16"]]
    model = EfficientNet(decode_arch_def(arch), num_features=24, stem_size=8, num_classes=5, act_layer=nn.ReLU6,
                         fix_stem=True, pad_type="same").double().eval()
    with torch.no_grad():  # non-trivial BN statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_small_patch14_dinov2", pretrained=False, **VIT_KWARGS).double().eval()


CASES = {"efficientnet": (tiny_efficientnet, 32, ("classifier",)), "vit": (tiny_vit, 28, ("head",))}


def _setup(case):
    make, size, heads = CASES[case]
    model = make()
    x = torch.randn(4, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    graph = build_graph(model, x[:1])
    return model, x, graph, find_groups(model, graph, heads)


def _features(model, x):
    return features_module(model)(x)


def _batches(model, x):
    feats = _features(model, x).detach()
    head = torch.randn(feats.shape[1], 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 1])
    return HeadedModel(model, lambda m, i: _features(m, i), head), [(x[:2], labels[:2]), (x[2:], labels[2:])]


def _removed_weight_sum(case, per_weight, group_index, unit):
    """Reference: physically remove one unit from a fresh copy, then sum the per-weight scores of the
    conv/linear weight entries that disappeared (each entry once: an entry goes when any of its indices
    does). Summed directly, not as total minus kept, so a unit whose scores are all zero sums to exactly 0."""
    model, _, graph, groups = _setup(case)
    removed = [[] for _ in groups]
    removed[group_index] = [unit]
    record = remove_units(model, graph, groups, removed)
    total = 0.0
    for name, sides in record["modules"].items():
        key = f"{name}.weight"
        if key not in per_weight or not isinstance(model.get_submodule(name), (nn.Conv2d, nn.Linear)):
            continue
        s = per_weight[key]
        kept = torch.ones_like(s, dtype=torch.bool)
        for side, idx in sides.items():
            depthwise = isinstance(model.get_submodule(name), nn.Conv2d) and model.get_submodule(name).groups > 1
            dim = 0 if side == "out" or depthwise else 1
            along = torch.zeros(s.shape[dim], dtype=torch.bool)
            along[torch.tensor(idx, dtype=torch.long)] = True
            kept &= along.view([-1 if d == dim else 1 for d in range(s.dim())])
        total += float(s[~kept].sum())
    return total


def _units_with_live_inputs(model, x, groups):
    """Per group, whether each unit's channels reach a dense consumer (a conv or linear reading them as input
    columns) with a nonzero value for some example: measured on the forward, not assumed of the random model.
    Such a unit's consumer columns get the gradient sum_positions (delta * activation) on that example."""
    seen = {}

    def record(name):
        def hook(module, inputs):
            a = inputs[0].detach()
            seen[name] = (a != 0).transpose(0, 1).flatten(1).any(1) if a.dim() == 4 else (a != 0).flatten(0, -2).any(0)
        return hook

    consumers = {m.param.removesuffix(".weight") for g in groups for m in g.members if m.dim == 1}
    handles = [model.get_submodule(n).register_forward_pre_hook(record(n)) for n in consumers]
    try:
        with torch.no_grad():
            _features(model, x)
    finally:
        for h in handles:
            h.remove()
    out = []
    for g in groups:
        live = torch.zeros(g.units, dtype=torch.bool)
        for m in g.members:
            if m.dim == 1:
                live[m.root_index[seen[m.param.removesuffix(".weight")][m.index]] // g.unit] = True
        out.append(live)
    return out


@pytest.mark.parametrize("case", ["efficientnet", "vit"])
@pytest.mark.parametrize("score", ["fisher_diag", "kfac", "magnitude"])
def test_group_score_is_the_sum_of_its_members_per_weight_scores(case, score):
    model, x, graph, groups = _setup(case)
    headed, batches = _batches(model, x)
    named = dict(model.named_parameters())
    params = {n: named[n] for n in prunable_parameter_names(model, CASES[case][2])}
    per_weight = {k: v.double() for k, v in get_score(score)(headed, batches, params).items()}
    scores = group_scores(score, headed, graph, groups, batches, params)
    assert scores == [] or all(s.dtype == torch.float64 for s in scores)
    # Positive by construction: magnitude (w^2 of random weights) and kfac (damped inverses) on every unit;
    # fisher_diag only where gradients flow, i.e. on units with live inputs to a consumer (ReLU6 leaves some
    # units of the random model dead, which ones depends on the CPU's kernels).
    live = _units_with_live_inputs(model, x, groups)
    for gi, group in enumerate(groups):
        alive = live[gi] if score == "fisher_diag" else torch.ones(group.units, dtype=torch.bool)
        assert alive.any(), group.name
        known = alive.nonzero().flatten()
        for unit in sorted({0, group.units - 1, int(known[0]), int(known[-1])}):
            expected = _removed_weight_sum(case, per_weight, gi, unit)
            if alive[unit]:
                assert expected > 0, (group.name, unit)
            assert scores[gi][unit].item() == pytest.approx(expected, rel=1e-10, abs=0), (group.name, unit)


def test_vit_groups_are_heads_and_mlp_neurons_and_removing_them_equals_zeroing_their_outputs():
    model, x, graph, groups = _setup("vit")
    assert sorted((g.kind, g.units) for g in groups) == [("heads", 4)] * 2 + [("neurons", 128)] * 2
    removed = [[1, 3] if g.kind == "heads" else list(range(0, 128, 3)) for g in groups]
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for g, units in zip(groups, removed):
            consumer = zeroed.get_submodule(g.name).proj if g.kind == "heads" else zeroed.get_submodule(
                g.name.rsplit(".", 1)[0]).fc2
            consumer.weight[:, g.channels(units)] = 0
    remove_units(model, graph, groups, removed)
    assert model.blocks[0].attn.num_heads == 2 and model.blocks[0].mlp.fc1.out_features == 128 - 43
    torch.testing.assert_close(_features(model, x), _features(zeroed, x), rtol=1e-12, atol=1e-12)


def test_conv_net_keeps_the_feature_dimension_the_heads_read():
    model, x, graph, groups = _setup("efficientnet")
    assert "conv_head" not in {g.name for g in groups}
    remove_units(model, graph, groups, choose_removals(groups, summed_scores(groups, {
        n: p.detach().abs() for n, p in model.named_parameters()}), 0.5))
    assert _features(model, x).shape == (4, 24)
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in tiny_efficientnet().parameters())


@pytest.mark.parametrize("case", ["efficientnet", "vit"])
def test_pruned_module_rebuilds_from_the_stock_module_and_equals_the_pruned_one(case, tmp_path):
    model, x, graph, groups = _setup(case)
    scores = summed_scores(groups, {n: p.detach().pow(2) for n, p in model.named_parameters()})
    record = remove_units(model, graph, groups, choose_removals(groups, scores, 0.5))
    kwargs = VIT_KWARGS if case == "vit" else None
    save_structured(model, record, tmp_path, "vit_small_patch14_dinov2" if case == "vit" else None, kwargs)
    rebuilt = load_structured(tmp_path, CASES[case][0]())
    assert torch.equal(_features(rebuilt, x), _features(model, x))
    assert next(rebuilt.parameters()).dtype == torch.float64
    if case == "vit":  # by the recorded timm name, no module given, or given and the same
        assert torch.equal(_features(load_structured(tmp_path), x), _features(model, x))
        assert torch.equal(_features(load_structured(tmp_path, "vit_small_patch14_dinov2"), x), _features(model, x))
        with pytest.raises(ConfigError, match=r"structure\.json records the architecture 'vit_small_patch14_dinov2', "
                                              r"not 'resnet18'"):
            load_structured(tmp_path, "resnet18")
    onnx_path = export_onnx(model, tmp_path / "pruned.onnx", x.shape[-1])
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": x.float().numpy()})[0]
    np.testing.assert_allclose(got, _features(model, x).detach().numpy(), rtol=1e-4, atol=1e-4)


def test_global_ranking_respects_the_ratio_and_the_per_group_floor():
    model, _, _, groups = _setup("efficientnet")
    total = sum(g.units for g in groups)
    scores = [torch.full((g.units,), float(i)) for i, g in enumerate(groups)]  # group 0 least important
    removed = choose_removals(groups, scores, 0.8)
    assert sum(map(len, removed)) == round(0.8 * total)
    assert len(removed[0]) == groups[0].units - floor(groups[0].units)  # the least important group hits its floor
    at_most = choose_removals(groups, scores, 0.99)  # beyond the floors: every group stops at its floor
    assert [g.units - len(r) for g, r in zip(groups, at_most)] == [floor(g.units) for g in groups]
    assert choose_removals(groups, scores, 0.0) == [[] for _ in groups]


@pytest.mark.parametrize("round_to", [4, 8])
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.8, 0.95])
def test_rounding_keeps_a_multiple_of_round_to_per_group_and_puts_back_the_best_removals(ratio, round_to):
    widths = [3, 8, 12, 16, 30, 48]
    groups = [Group(f"g{i}", "channels", None, None, w) for i, w in enumerate(widths)]
    groups.append(Group("attn", "heads", None, None, 12, unit=2))  # 6 heads: never rounded
    gen = torch.Generator().manual_seed(0)
    scores = [torch.rand(g.units, generator=gen, dtype=torch.float64) for g in groups]
    plain = choose_removals(groups, scores, ratio)
    rounded = choose_removals(groups, scores, ratio, round_to=round_to)
    assert rounded[-1] == plain[-1]
    for g, s, p, r in zip(groups[:-1], scores, plain, rounded):
        kept = g.units - len(r)
        assert kept % round_to == 0 or kept == g.units
        assert kept >= floor(g.units) and set(r) <= set(p)
        # brute force: the group keeps the smallest allowed count >= what the plain ranking kept, and
        # removes its lowest-scoring units
        allowed = [k for k in range(1, g.units + 1) if k % round_to == 0 or k == g.units]
        assert kept == min(k for k in allowed if k >= g.units - len(p))
        assert r == sorted(s.argsort()[:len(r)].tolist())
    assert choose_removals(groups, scores, ratio, round_to=1) == plain


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5])
def test_a_ratio_outside_zero_one_is_rejected_naming_the_value(ratio):
    with pytest.raises(ConfigError, match=str(ratio)):
        check_ratio(ratio)


def test_a_grouped_conv_is_rejected_naming_the_layer():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 2))
    with pytest.raises(UnsupportedLayerError, match="'1'.*groups=2"):
        build_graph(model, torch.randn(1, 3, 8, 8))


def test_a_save_killed_midway_leaves_the_previous_files_whole(tmp_path, monkeypatch):
    model, x, graph, groups = _setup("efficientnet")
    record = remove_units(model, graph, groups, choose_removals(groups, summed_scores(groups, {
        n: p.detach().abs() for n, p in model.named_parameters()}), 0.5))
    save_structured(model, record, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def killed(*_):
        raise KeyboardInterrupt

    with torch.no_grad():  # the second save would write other weights
        next(model.parameters()).add_(1.0)

    for where in ("pait.export.structured.save_file", "pathlib.Path.write_text"):  # the weights, then the JSON
        with monkeypatch.context() as patch:
            patch.setattr(where, killed)
            with pytest.raises(KeyboardInterrupt):
                save_structured(model, record, tmp_path)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    save_structured(model, record, tmp_path)
    assert torch.equal(_features(load_structured(tmp_path, tiny_efficientnet()), x), _features(model, x))


def test_group_mean_normalisation_equals_torch_pruning_mean_normalizer():
    rng = torch.Generator().manual_seed(0)
    scores = [torch.rand(5, generator=rng, dtype=torch.float64) * 10 ** k for k in range(3)] + [torch.zeros(4)]
    got = normalized_by_group_mean(scores)
    imp = tp.importance.GroupMagnitudeImportance(normalizer="mean")
    for s, g in zip(scores[:3], got[:3]):
        assert torch.allclose(g, imp._normalize(s, "mean"), rtol=1e-12) and g.mean().item() == pytest.approx(1.0)
    assert torch.equal(got[3], torch.zeros(4))
    assert [g.argsort().tolist() for g in got[:3]] == [s.argsort().tolist() for s in scores[:3]]  # order kept within a group
