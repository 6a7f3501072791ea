"""GraSP against its authors' code: ganguli-lab/Synaptic-Flow ``Pruners/pruners.py``, class ``GraSP``
(itself based on alecwangcq/GraSP ``pruner/GraSP.py``), ported below, at temperature 1 and 200.

The reference takes its loss as an argument; it is compared with pait under pait's loss (MSE to the
one-hot label) and under the reference's own (cross-entropy, pait's loss replaced in the test). Listed
differences (see ``pait.scores.gradient.grasp``): the reference sums per-batch mean-loss gradients and
divides its scores by ``|sum| + eps``; pait averages over examples and does not normalise. With equal
batches both are positive scales, applied to pait's scores below.
"""

import pytest
import torch
import torch.nn.functional as F

import pait.scores._common
import pait.scores.gradient
from pait.errors import ConfigError
from pait.heads import mse_to_one_hot
from pait.scores import get_score
from tests.scores import tiny


class SynapticFlowGraSP:
    """Synaptic-Flow's ``GraSP`` pruner's ``score``, as published (device moves dropped)."""

    def __init__(self, masked_parameters, temp):
        self.masked_parameters = list(masked_parameters)
        self.scores = {}
        self.temp = temp
        self.eps = 1e-10

    def score(self, model, loss, dataloader):
        # first gradient vector without computational graph
        stopped_grads = 0
        for batch_idx, (data, target) in enumerate(dataloader):
            output = model(data) / self.temp
            L = loss(output, target)

            grads = torch.autograd.grad(L, [p for (_, p) in self.masked_parameters], create_graph=False)
            flatten_grads = torch.cat([g.reshape(-1) for g in grads if g is not None])
            stopped_grads += flatten_grads

        # second gradient vector with computational graph
        for batch_idx, (data, target) in enumerate(dataloader):
            output = model(data) / self.temp
            L = loss(output, target)

            grads = torch.autograd.grad(L, [p for (_, p) in self.masked_parameters], create_graph=True)
            flatten_grads = torch.cat([g.reshape(-1) for g in grads if g is not None])

            gnorm = (stopped_grads * flatten_grads).sum()
            gnorm.backward()

        # calculate score Hg * theta (negate to remove top percent)
        for _, p in self.masked_parameters:
            self.scores[id(p)] = torch.clone(p.grad * p.data).detach()
            p.grad.data.zero_()

        # normalize score
        all_scores = torch.cat([torch.flatten(v) for v in self.scores.values()])
        norm = torch.abs(torch.sum(all_scores)) + self.eps
        for _, p in self.masked_parameters:
            self.scores[id(p)].div_(norm)


def _cross_entropy(outputs, labels):
    return F.cross_entropy(outputs, labels)


LOSSES = {"mse": mse_to_one_hot, "cross_entropy": _cross_entropy}


def _case():
    model, data = tiny.cnn(), tiny.batches(n=8, batch=4)  # equal batches: the reference weights batches equally
    names = ["0.weight", "3.weight", "7.weight"]
    own = dict(model.named_parameters())
    return model, data, {n: own[n] for n in names}


def _reference(model, data, params, loss, temperature):
    for p in model.parameters():
        p.grad = None
    pruner = SynapticFlowGraSP([(torch.ones_like(p), p) for p in params.values()], temperature)
    pruner.score(model, loss, data)
    return {k: pruner.scores[id(p)] for k, p in params.items()}


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_equals_synaptic_flow_up_to_its_batch_sum_and_normalisation(loss, temperature, monkeypatch):
    model, data, params = _case()
    if loss != "mse":  # pait with the reference's loss: replace pait's loss where grasp reads it
        monkeypatch.setattr(pait.scores.gradient, "mse_to_one_hot", LOSSES[loss])
        monkeypatch.setattr(pait.scores._common, "mse_to_one_hot", LOSSES[loss])
    got = get_score("grasp")(model, data, params, temperature=temperature)
    want = _reference(model, data, params, LOSSES[loss], temperature)
    # the reference's g and H g are sums over the batches, pait's means: a factor len(data) ** 2
    scaled = {k: v * len(data) ** 2 for k, v in got.items()}
    norm = torch.cat([v.flatten() for v in scaled.values()]).sum().abs() + 1e-10
    for k in params:
        torch.testing.assert_close(scaled[k] / norm, want[k], rtol=1e-10, atol=1e-14)
    assert all(v.abs().max() > 0 for v in want.values())


def test_the_temperature_changes_the_ranking_not_only_the_scale():
    model, data, params = _case()
    one = torch.cat([v.flatten() for v in get_score("grasp")(model, data, params).values()])
    hot = torch.cat([v.flatten() for v in get_score("grasp")(model, data, params, temperature=200.0).values()])
    assert not torch.equal(one.argsort(), hot.argsort())
    default = torch.cat([v.flatten() for v in get_score("grasp")(model, data, params, temperature=1.0).values()])
    assert torch.equal(default, one)  # T = 1 is the default and divides exactly


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "200", True])
def test_a_temperature_that_is_not_a_finite_positive_number_is_refused(bad):
    model, data, params = _case()
    with pytest.raises(ConfigError, match="grasp: temperature"):
        get_score("grasp")(model, data, params, temperature=bad)
