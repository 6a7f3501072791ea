"""Structured ``hessian``: Torch-Pruning's OBD importance on the mean of per-example squared gradients.

The intended value of a channel c, by hand: per layer of its group, ``sum w^2 * E[g^2]`` over the weight
entries the channel owns (the producing conv's row, its BatchNorm's weight, the consuming conv's column),
the mean over those layers (Torch-Pruning's ``group_reduction="mean"``), divided by the mean over the
group's channels (its ``normalizer="mean"``); E over calibration examples, from per-example gradients by
``torch.func`` one example at a time. Torch-Pruning reduces in float32, hence the final tolerance.
"""

import copy

import torch
from torch import nn
from torch.func import functional_call, grad

from pait.heads import HeadedModel, mse_to_one_hot
from pait.prune.structured.groups import build_graph, find_groups
from pait.prune.structured.scores import group_scores, mean_squared_gradients

CLASSES = 3


class Net(nn.Module):
    """conv-BN-ReLU x 2, conv, pooled features, a classifier (the feature dimension stays whole)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 5, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(5)
        self.conv3 = nn.Conv2d(5, 6, 1)
        self.classifier = nn.Linear(6, CLASSES)
        with torch.no_grad():
            for bn in (self.bn1, self.bn2):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(0.2, 0.6)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.conv3(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _case():
    model = Net().double().eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 3, 8, 8, dtype=torch.float64, generator=gen)
    y = torch.randint(0, CLASSES, (7,), generator=gen)
    head = torch.randn(6, CLASSES, dtype=torch.float64, generator=gen)
    headed = HeadedModel(model, lambda m, images: m.features(images), head)
    return model, headed, [(x[:3], y[:3]), (x[3:], y[3:])]  # unequal batches: every example counts once


def _per_example_squares(headed, batches):
    """E[g^2] per parameter name, from one ``torch.func.grad`` per example."""
    theta = {n: p.detach() for n, p in headed.named_parameters()}

    def loss(t, x, y):
        return mse_to_one_hot(functional_call(headed, t, (x[None],)), y[None])

    squares = [{n: g ** 2 for n, g in grad(loss)(theta, x, y).items()} for images, labels in batches
               for x, y in zip(images, labels)]
    return {n: sum(s[n] for s in squares) / len(squares) for n in theta}, squares[-1]


def test_mean_squared_gradients_are_the_mean_of_per_example_squares():
    _, headed, batches = _case()
    want, _ = _per_example_squares(headed, batches)
    got = {n: v for p, v in mean_squared_gradients(headed, batches).items()
           for n, q in headed.named_parameters() if p is q}
    assert set(got) == {n for n in want if not n.startswith("backbone.classifier")}  # the classifier is unused
    for n, v in got.items():
        torch.testing.assert_close(v, want[n], rtol=1e-12, atol=1e-18)


def _intended(model, squares, prefix="backbone."):
    """The hand-written importance of conv1's and conv2's channels from E[g^2] ``squares``."""
    w, f = dict(model.named_parameters()), {n.removeprefix(prefix): v for n, v in squares.items()}

    def owned(name, dim):
        return (w[name].detach() ** 2 * f[name]).movedim(dim, 0).reshape(w[name].shape[dim], -1).sum(1)

    out = {}
    for conv, bn, consumer in (("conv1", "bn1", "conv2"), ("conv2", "bn2", "conv3")):
        layers = [owned(f"{conv}.weight", 0), owned(f"{bn}.weight", 0), owned(f"{consumer}.weight", 1)]
        mean = sum(layers) / len(layers)
        out[conv] = mean / mean.mean()
    return out


def test_hessian_group_scores_are_the_obd_importance_of_the_mean_squared_gradients():
    model, headed, batches = _case()
    graph = build_graph(model, batches[0][0][:1])
    groups = find_groups(model, graph, ("classifier",))
    assert sorted(g.name for g in groups) == ["conv1", "conv2"]
    squares, last = _per_example_squares(headed, batches)
    want = _intended(model, squares)
    before = copy.deepcopy(model.state_dict())
    got = dict(zip((g.name for g in groups), group_scores("hessian", headed, graph, groups, batches, {})))
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=2e-6, atol=1e-9)  # Torch-Pruning's float32
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    # the last example's squares alone (Torch-Pruning 1.6.1's accumulate_grad) rank differently
    stale = _intended(model, last)
    assert any(not torch.allclose(stale[n], want[n], rtol=1e-3) for n in want)


def test_the_hessian_stage_keys_changed_and_no_other_did():
    from types import SimpleNamespace

    from pait.cache import config_key
    from pait.config import FinetuneConfig
    from pait.grid.stages import scores_key, unit_key
    from pait.grid.structured import channels_unit_key, group_scores_key

    config = SimpleNamespace(score_options={}, recovery_options={}, score_batch_size=8, round_to=1,
                             finetune=FinetuneConfig(), structure="channels", mask_options={})
    ctx = SimpleNamespace(config=config, seed=0, heads_key={"encoder": "e"})
    for score in ("magnitude", "fisher_diag", "kfac", "taylor", "hessian"):
        before = ({**scores_key(ctx, "s", score, None), "structure": "channels", "group_score_revision": 0},
                  {**unit_key(ctx, "s", score, 0.5, "bn"), "structure": "channels", "group_score_revision": 0})
        after = (group_scores_key(ctx, "s", score), channels_unit_key(ctx, "s", score, 0.5, "bn"))
        if score == "hessian":  # the last example's g^2 before, the mean now: its cached stages are not reused
            assert after == tuple({**k, "group_score_revision": 1} for k in before)
            assert all(config_key(a) != config_key(b) for a, b in zip(after, before))
        else:
            assert after == before
