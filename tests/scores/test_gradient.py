import pytest
import torch
from torch.func import functional_call

from pait.scores import get_score
from tests.scores import tiny


def full_loss(model, data, theta, temperature=1.0):
    n = sum(len(x) for x, _ in data)
    return sum(tiny.loss(lambda z: functional_call(model, theta, (z,)) / temperature, x, y) * len(x)
               for x, y in data) / n


def test_snip_equals_autograd_reference():
    model, data = tiny.cnn(), tiny.batches(n=7, batch=3)  # unequal batches: weighted by size
    params = {"a": model[0].weight, "b": model[3].weight, "c": model[7].weight}
    theta = {"0.weight": model[0].weight, "3.weight": model[3].weight, "7.weight": model[7].weight}
    grads = torch.autograd.grad(full_loss(model, data, theta), list(theta.values()))
    got = get_score("snip")(model, data, params)
    for k, g in zip(params, grads):
        torch.testing.assert_close(got[k], (params[k].detach() * g).abs(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_equals_theta_times_exact_hessian_gradient(temperature):
    model, data = tiny.mlp(), tiny.batches(n=5, batch=2)
    names = ["3.weight", "5.weight"]
    own = dict(model.named_parameters())
    params = {n: own[n] for n in names}
    flat0 = torch.cat([own[n].detach().reshape(-1) for n in names])
    shapes = [own[n].shape for n in names]

    def loss_of_flat(flat):
        parts = flat.split([s.numel() for s in shapes])
        return full_loss(model, data, {n: p.reshape(s) for n, p, s in zip(names, parts, shapes)}, temperature)

    hessian = torch.func.hessian(loss_of_flat)(flat0)
    g = torch.func.grad(loss_of_flat)(flat0)
    expected = (flat0 * (hessian @ g)).split([s.numel() for s in shapes])
    got = get_score("grasp")(model, data, params, temperature=temperature)
    for n, e, s in zip(names, expected, shapes):
        torch.testing.assert_close(got[n], e.reshape(s), rtol=1e-8, atol=1e-14 / temperature**2)
