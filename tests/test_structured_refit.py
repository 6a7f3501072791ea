"""``sequential`` after structured pruning: refit of the layers that lost inputs, checked in float64."""

import copy

import numpy as np
import pytest
import torch
from test_structured import _features, _setup
from torch import nn

from pait.prune.structured.groups import UnsupportedLayerError, remove_units
from pait.prune.recoveries.refit import consumers, refit_consumers, refit_layer
from pait.prune.structured.scores import summed_scores
from pait.prune.structured.selection import choose_removals


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_refit_layer_is_the_least_squares_solution_numpy_finds():
    """Undamped, the refit is lstsq of the dense outputs (bias included) on the pruned inputs plus a ones column."""
    dense_w, dense_b = torch.randn(5, 7, dtype=torch.float64, generator=_generator(0)), torch.randn(5, dtype=torch.float64)
    kept = [0, 2, 3, 6]
    xd = [torch.randn(20, 7, dtype=torch.float64, generator=_generator(i)) for i in (1, 2)]
    xp = [x[:, kept] + 0.1 * torch.randn(20, 4, dtype=torch.float64, generator=_generator(5 + i)) for i, x in enumerate(xd)]
    targets = [x @ dense_w.T + dense_b for x in xd]
    w, b = refit_layer(dense_w[:, kept].clone(), dense_b.clone(), targets, xp, damping=0.0)
    design = np.concatenate([torch.cat(xp).numpy(), np.ones((40, 1))], 1)
    target = (torch.cat(xd) @ dense_w.T + dense_b).numpy()
    solution = np.linalg.lstsq(design, target, rcond=None)[0].T
    np.testing.assert_allclose(w.numpy(), solution[:, :4], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(b.numpy(), solution[:, 4], rtol=1e-9, atol=1e-10)


def test_heavy_damping_keeps_the_cut_weights():
    dense_w = torch.randn(3, 6, dtype=torch.float64, generator=_generator(0))
    x = [torch.randn(30, 6, dtype=torch.float64, generator=_generator(1))]
    w, b = refit_layer(dense_w[:, :4].clone(), None, [x[0] @ dense_w.T], [x[0][:, :4]], damping=1e12)
    assert b is None
    torch.testing.assert_close(w, dense_w[:, :4], rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("case", ["efficientnet", "vit"])
def test_refit_brings_the_pruned_features_closer_to_the_dense_ones_and_keeps_shapes(case):
    model, x, graph, groups = _setup(case)
    dense = copy.deepcopy(model)
    scores = summed_scores(groups, {n: p.detach().abs() for n, p in model.named_parameters()})
    structure = remove_units(model, graph, groups, choose_removals(groups, scores, 0.4))
    cut = copy.deepcopy(model)
    shapes = {n: p.shape for n, p in model.named_parameters()}
    batches = [(x[:2], None), (x[2:], None)]
    refit = refit_consumers(dense, model, structure, batches, lambda m, i: _features(m, i), damping=1e-6)
    assert refit == consumers(model, structure, x[:1], lambda m, i: _features(m, i)) and refit  # some were refit
    if case == "vit":
        assert {n.rsplit(".", 1)[-1] for n in refit} == {"proj", "fc2"}
    target = _features(dense, x)
    before = (_features(cut, x) - target).pow(2).sum()
    after = (_features(model, x) - target).pow(2).sum()
    assert after < 0.5 * before
    assert {n: p.shape for n, p in model.named_parameters()} == shapes


def test_the_second_layer_is_refit_on_the_inputs_of_the_refit_first_one():
    """Sequential: a 3-layer MLP with hidden units cut in both hidden layers; the last layer's Gram matrix
    must come from the already refit middle layer (checked by refitting it again by hand)."""
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    pruned = copy.deepcopy(dense)
    keep1, keep2 = [0, 1, 3, 4, 6], [1, 2, 5, 7]
    with torch.no_grad():
        pruned[0] = nn.Linear(6, 5).double()
        pruned[0].weight.copy_(dense[0].weight[keep1])
        pruned[0].bias.copy_(dense[0].bias[keep1])
        pruned[2] = nn.Linear(5, 4).double()
        pruned[2].weight.copy_(dense[2].weight[keep2][:, keep1])
        pruned[2].bias.copy_(dense[2].bias[keep2])
        pruned[4] = nn.Linear(4, 3).double()
        pruned[4].weight.copy_(dense[4].weight[:, keep2])
        pruned[4].bias.copy_(dense[4].bias)
    structure = {"modules": {"0": {"out": keep1}, "2": {"out": keep2, "in": keep1}, "4": {"in": keep2}}}
    x = torch.randn(40, 6, dtype=torch.float64, generator=_generator(3))
    batches = [(x[:20], None), (x[20:], None)]
    assert refit_consumers(dense, pruned, structure, batches, lambda m, i: m(i), damping=0.0) == ["2", "4"]
    ones = torch.ones(40, 1, dtype=torch.float64)
    with torch.no_grad():  # the middle layer: its kept rows of the dense outputs, on the cut first layer's outputs
        middle = torch.linalg.lstsq(torch.cat([pruned[:2](x), ones], 1), dense[:3](x)[:, keep2]).solution.T
        hidden = pruned[:4](x)  # inputs of the last layer through the refit middle layer
        last = torch.linalg.lstsq(torch.cat([hidden, ones], 1), dense(x)).solution.T
    torch.testing.assert_close(pruned[2].weight, middle[:, :5], rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(pruned[2].bias, middle[:, 5], rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(pruned[4].weight, last[:, :4], rtol=1e-8, atol=1e-9)
    torch.testing.assert_close(pruned[4].bias, last[:, 4], rtol=1e-8, atol=1e-9)


def test_a_strided_padded_3x3_conv_is_refit_on_its_patches_with_the_relative_damping():
    """Closed form on hand-built patches: (Y Xp^T + lam W0)(Xp Xp^T + lam I)^-1, lam = damping x mean diag."""
    torch.manual_seed(0)
    dense = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 3, stride=2, padding=1,
                                                                              bias=False)).double()
    keep = [0, 2, 3, 5]
    pruned = copy.deepcopy(dense)
    with torch.no_grad():
        pruned[0] = nn.Conv2d(3, 4, 3, padding=1).double()
        pruned[0].weight.copy_(dense[0].weight[keep])
        pruned[0].bias.copy_(dense[0].bias[keep])
        pruned[2] = nn.Conv2d(4, 4, 3, stride=2, padding=1, bias=False).double()
        pruned[2].weight.copy_(dense[2].weight[:, keep])
    cut = pruned[2].weight.detach().clone()
    x = torch.randn(3, 3, 9, 9, dtype=torch.float64, generator=_generator(4))
    structure = {"modules": {"0": {"out": keep}, "2": {"in": keep}}}
    refit_consumers(dense, pruned, structure, [(x, None)], lambda m, i: m(i), damping=0.3)

    def patches(layer, inputs):  # (positions, in x 3 x 3), by hand
        padded = torch.nn.functional.pad(inputs, (1, 1, 1, 1))
        rows = [padded[n, :, i:i + 3, j:j + 3].reshape(-1) for n in range(len(inputs))
                for i in range(0, padded.shape[2] - 2, 2) for j in range(0, padded.shape[3] - 2, 2)]
        return torch.stack(rows)

    with torch.no_grad():
        xd, xp = patches(dense[2], dense[:2](x)), patches(pruned[2], pruned[:2](x))
        gram = xp.T @ xp
        lam = 0.3 * gram.diagonal().mean()
        expected = torch.linalg.solve(gram + lam * torch.eye(len(gram), dtype=torch.float64),
                                      (xd @ dense[2].weight.flatten(1).T).T @ xp + lam * cut.flatten(1), left=False)
    torch.testing.assert_close(pruned[2].weight.flatten(1), expected, rtol=1e-8, atol=1e-10)


def test_a_grouped_conv_that_lost_inputs_or_a_layer_applied_twice_is_refused_by_name():
    model, x, _, _ = _setup("efficientnet")
    depthwise = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
    with pytest.raises(UnsupportedLayerError, match=depthwise):
        consumers(model, {"modules": {depthwise: {"in": [0]}}}, x[:1], lambda m, i: _features(m, i))
    layer = nn.Linear(3, 3).double()
    twice = nn.Sequential(layer, nn.Tanh(), layer)
    with pytest.raises(UnsupportedLayerError, match=r"0 \(2x\)"):
        consumers(twice, {"modules": {"0": {"in": [0, 1]}}}, torch.zeros(2, 3, dtype=torch.float64), lambda m, i: m(i))
