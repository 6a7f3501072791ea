import copy

import pytest
import torch
from torch import nn

from pait.masks import global_mask
from pait.scores import get_score
from tests.scores import tiny


def test_synflow_one_iteration_is_abs_theta_times_gradient_of_linearised_output():
    model, data = tiny.mlp(), tiny.batches()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = {"a": model[1].weight, "b": model[5].weight}
    got = get_score("synflow")(model, data, params, sparsity=0.5, iterations=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # signs and values kept
    w1, b1, w2, w3, b3 = (t.detach().abs().requires_grad_() for t in
                          (model[1].weight, model[1].bias, model[3].weight, model[5].weight, model[5].bias))
    x = torch.ones(1, 192, dtype=torch.float64)
    r = (torch.relu(torch.tanh(x @ w1.T + b1) @ w2.T) @ w3.T + b3).sum()
    g1, g3 = torch.autograd.grad(r, [w1, w3])
    torch.testing.assert_close(got["a"], (w1 * g1).detach(), rtol=1e-10, atol=0)
    torch.testing.assert_close(got["b"], (w3 * g3).detach(), rtol=1e-10, atol=0)


def test_synflow_scores_reproduce_its_iterative_mask():
    model, data = tiny.cnn(), tiny.batches()
    params = {n: p for n, p in model.named_parameters() if p.dim() > 1}
    scores = get_score("synflow")(model, data, params, sparsity=0.8, iterations=10)
    mask = global_mask(scores, 0.8)
    assert all((scores[k][~mask[k]] <= scores[k][mask[k]].min()).all() for k in mask if mask[k].any())
    total = sum(p.numel() for p in params.values())
    assert sum(int((~m).sum()) for m in mask.values()) == round(0.8 * total)


@pytest.mark.parametrize("build", [tiny.vit, tiny.mlp], ids=["attention", "tanh"])
def test_px_refuses_models_outside_its_scope(build):
    model = build()
    with pytest.raises(ValueError, match="ReLU conv nets only"):
        get_score("px")(model, tiny.batches(), {"w": next(model.parameters())})


def test_synflow_passes_the_flow_through_clamping_activations_as_through_relu():
    torch.manual_seed(0)
    clamped = nn.Sequential(nn.Linear(6, 8), nn.ReLU6(), nn.Linear(8, 8), nn.Hardtanh(0.0, 1.0), nn.Linear(8, 3)).double()
    plain = copy.deepcopy(clamped)
    plain[1], plain[3] = nn.ReLU(), nn.ReLU()
    data = [(torch.rand(4, 6, dtype=torch.float64), torch.zeros(4, dtype=torch.long))]
    got = get_score("synflow")(clamped, data, dict(clamped.named_parameters()), sparsity=0.5, iterations=2)
    want = get_score("synflow")(plain, data, dict(plain.named_parameters()), sparsity=0.5, iterations=2)
    assert all(torch.equal(got[k], want[k]) for k in want) and got["0.weight"].sum() > 0
    assert isinstance(clamped[1], nn.ReLU6)  # the caller's model keeps its activations
