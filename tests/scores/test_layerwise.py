"""``magnitude_uniform`` and ``lamp`` in float64 on tiny models: per-layer counts exact, LAMP against a
brute-force formula and against its authors' code (ported below)."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import prune

from pait.masks import global_mask, layer_counts, num_pruned, uniform_pruned_counts
from pait.scores import get_score
from tests.scores import tiny


def _model() -> nn.Module:
    """A conv net with a depthwise conv and layers of very different sizes, and a head left unpruned."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 6, 3, groups=6), nn.ReLU(), nn.Conv2d(6, 12, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 20), nn.ReLU(),
                         nn.Linear(20, tiny.CLASSES)).double().eval()


def _params(model: nn.Module, head: bool = False) -> dict[str, nn.Parameter]:
    names = [n for n, p in model.named_parameters() if n.endswith("weight") and (head or not n.startswith("9."))]
    own = dict(model.named_parameters())
    return {n: own[n] for n in names}


@pytest.mark.parametrize("q", [0.2, 0.45, 0.6, 0.9])
def test_magnitude_uniform_prunes_the_uniform_count_of_smallest_weights_in_every_layer(q):
    model = _model()
    params = _params(model)
    mask = global_mask(get_score("magnitude_uniform")(model, [], params, sparsity=q), q)
    expected = uniform_pruned_counts({n: p.numel() for n, p in params.items()}, q)
    assert {n: p.numel() - c for n, p in params.items() for c in [expected[n]]} == layer_counts(mask)
    assert sum(int((~m).sum()) for m in mask.values()) == num_pruned(sum(p.numel() for p in params.values()), q)
    for name, p in params.items():  # brute force: the expected[name] smallest |theta| of the layer are pruned
        w = p.detach().abs().reshape(-1)
        pruned = set(torch.argsort(w)[: expected[name]].tolist())
        assert set((~mask[name]).reshape(-1).nonzero().squeeze(1).tolist()) == pruned, name


def test_magnitude_uniform_breaks_ties_by_position_as_the_global_mask():
    model = nn.Sequential(nn.Linear(4, 3, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -1.0, 2.0, 1.0]] * 3))
    params = _params(model)
    mask = global_mask(get_score("magnitude_uniform")(model, [], params, sparsity=0.5), 0.5)
    assert mask["0.weight"].reshape(-1).tolist() == global_mask({"w": model[0].weight.detach().pow(2)}, 0.5)["w"].reshape(-1).tolist()


def _brute_lamp(w: torch.Tensor) -> torch.Tensor:
    """LAMP's definition, weight by weight (no ties): theta_u^2 over the sum of theta_v^2 with theta_v^2 >= theta_u^2."""
    w2 = w.reshape(-1).pow(2)
    return torch.stack([w2[u] / w2[w2 >= w2[u]].sum() for u in range(w2.numel())]).reshape(w.shape)


def test_lamp_is_its_formula():
    model = _model()
    params = _params(model)
    scores = get_score("lamp")(model, [], params)
    for name, p in params.items():
        assert scores[name].dtype == torch.float64
        torch.testing.assert_close(scores[name], _brute_lamp(p.detach()), rtol=1e-12, atol=0)
        assert float(scores[name].max()) == 1.0  # the largest weight of each layer


def test_lamp_of_an_all_zero_layer_is_zero_and_ties_keep_a_finite_score():
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 2, bias=False)).double()
    with torch.no_grad():
        model[0].weight.zero_()
        model[1].weight.copy_(torch.tensor([[1.0, 1.0], [2.0, 0.0]]))
    scores = get_score("lamp")(model, [], _params(model))
    assert scores["0.weight"].eq(0).all()
    # sorted ascending (stable): 0, 1 (first), 1 (second), 2 over suffix sums 6, 6, 5, 4
    torch.testing.assert_close(scores["1.weight"].reshape(-1), torch.tensor([1 / 6, 1 / 5, 1.0, 0.0], dtype=torch.float64))


# --- The authors' LAMP (github.com/jaeho-lee/layer-adaptive-sparsity, tools/pruners.py and tools/utils.py, MIT
# licence), ported with its model walk replaced by the list of modules to prune. Otherwise verbatim.

def _authors_normalize_scores(scores):
    sorted_scores, sorted_idx = scores.view(-1).sort(descending=False)
    scores_cumsum_temp = sorted_scores.cumsum(dim=0)
    scores_cumsum = torch.zeros(scores_cumsum_temp.shape, device=scores.device)
    scores_cumsum[1:] = scores_cumsum_temp[:len(scores_cumsum_temp) - 1]
    sorted_scores /= (scores.sum() - scores_cumsum)
    new_scores = torch.zeros(scores_cumsum.shape, device=scores.device)
    new_scores[sorted_idx] = sorted_scores
    return new_scores.view(scores.shape)


def _authors_compute_lamp_amounts(modules, amount):
    unmaskeds = torch.FloatTensor([m.weight_mask.sum() for m in modules])
    num_surv = int(np.round(unmaskeds.sum() * (1.0 - amount)))
    flattened_scores = [_authors_normalize_scores(m.weight ** 2).view(-1) for m in modules]
    concat_scores = torch.cat(flattened_scores, dim=0)
    topks, _ = torch.topk(concat_scores, num_surv)
    threshold = topks[-1]
    final_survs = [torch.ge(score, threshold * torch.ones(score.size()).to(score.device)).sum() for score in flattened_scores]
    return [1.0 - (final_surv / unmaskeds[idx]) for idx, final_surv in enumerate(final_survs)]


def _authors_prune_weights_lamp(modules, amount):
    for m in modules:  # prune_weights_reparam
        prune.identity(m, name="weight")
    amounts = _authors_compute_lamp_amounts(modules, amount)
    for idx, m in enumerate(modules):  # prune_weights_l1predefined
        prune.l1_unstructured(m, name="weight", amount=float(amounts[idx]))


@pytest.mark.parametrize("q", [0.3, 0.5, 0.7, 0.9])
def test_lamp_masks_are_the_authors_masks(q):
    """The authors' LAMP on the same layers gives the same mask. Intentional differences of pait's ``lamp``
    (none matters without ties or halves, as here):

    - which layers: pait scores the encoder's prunable weights (conv and linear weights, attention
      projections included, ``Encoder.prunable_parameters``) and never the classifier (the frozen ridge
      head); the authors prune every ``nn.Linear`` and ``nn.Conv2d`` weight, the classifier included. Here
      both get the same modules (the head left out);
    - the global count: pait prunes exactly round(q * N) (``num_pruned``); the authors keep round((1 - q) * N)
      by a threshold that keeps every weight tied with it (possibly more);
    - ties: pait sorts stably and breaks ties by position (``global_mask``); the authors' sort and
      ``prune.l1_unstructured``'s top-k order ties arbitrarily;
    - precision: pait's suffix sums are a reversed cumulative sum in float64 (stored as float32 in the scores
      stage like every score); the authors subtract a float32 prefix sum from the total, and their code
      needs float32 weights (it writes into float32 buffers), so it runs on a float32 copy here;
    - an all-zero layer: pait scores it 0, the authors 0/0 = NaN;
    - one shot from dense weights: the authors' count of unmasked weights (iterative pruning) is the numel here.
    """
    model = _model()
    params = _params(model)
    ours = global_mask(get_score("lamp")(model, [], params), q)
    modules = [copy.deepcopy(model[i]).float() for i in (0, 2, 4, 7)]  # the authors' code runs in float32
    with torch.no_grad():
        _authors_prune_weights_lamp(modules, q)
    theirs = {n: m.weight_mask.bool() for n, m in zip(params, modules)}
    assert layer_counts(ours) == layer_counts(theirs)
    assert all(torch.equal(ours[n], theirs[n]) for n in params)
    with warnings.catch_warnings():  # global magnitude empties the first layer at 0.9
        warnings.simplefilter("ignore")
        magnitude = global_mask(get_score("magnitude")(model, [], params), q)
    assert layer_counts(ours) != layer_counts(magnitude)  # the test can tell LAMP from magnitude


def test_lamp_and_uniform_differ_from_global_magnitude_only_in_the_per_layer_counts():
    """Within a layer all three keep the largest |theta|: each mask equals magnitude at its own counts."""
    from pait.masks import mask_with_counts

    model = _model()
    params = _params(model)
    magnitude = get_score("magnitude")(model, [], params)
    for name, options in (("lamp", {}), ("magnitude_uniform", {"sparsity": 0.6})):
        mask = global_mask(get_score(name)(model, [], params, **options), 0.6)
        again = mask_with_counts(magnitude, layer_counts(mask))
        assert all(torch.equal(mask[n], again[n]) for n in params), name
