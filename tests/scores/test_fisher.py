import pytest
import torch

from pait.scores import get_score
from tests.scores import tiny


def fisher_by_loop(model, data, params):
    total = {k: torch.zeros_like(p) for k, p in params.items()}
    count = 0
    for x, y in data:
        for n in range(len(x)):
            grads = torch.autograd.grad(tiny.loss(model, x[n : n + 1], y[n : n + 1]), list(params.values()))
            for k, g in zip(params, grads):
                total[k] += g.pow(2)
            count += 1
    return {k: p.detach().pow(2) * total[k] / count for k, p in params.items()}


@pytest.mark.parametrize("build, chunk_size", [(tiny.mlp, 1), (tiny.mlp, 16), (tiny.cnn, 2), (tiny.vit, 2)],
                         ids=["mlp-1", "mlp-16", "cnn_bn_eval-2", "vit_mha-2"])
def test_fisher_diag_equals_per_example_loop(build, chunk_size):
    model, data = build(), tiny.batches()
    # keys that are not the model's own names: the score maps them by identity
    params = {f"p{i}.{n}": p for i, (n, p) in enumerate(model.named_parameters()) if p.dim() > 1}
    expected = fisher_by_loop(model, data, params)
    got = get_score("fisher_diag")(model, data, params, chunk_size=chunk_size)
    assert list(got) == list(params)
    for k in params:
        torch.testing.assert_close(got[k], expected[k], rtol=1e-8, atol=1e-12)


def test_fisher_diag_leaves_bn_statistics_and_mode_alone():
    model = tiny.cnn()
    model[1].train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    get_score("fisher_diag")(model, tiny.batches(), {"w": model[0].weight})
    assert model[1].training and not model[0].training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
