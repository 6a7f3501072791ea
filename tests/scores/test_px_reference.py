"""PX against a port of its authors' code, on tiny float64 ReLU CNNs with BatchNorm, biases and a residual.

The oracle is ported from iurada/px-ntk-pruning: ``lib/layers.py`` (masked Conv2d / Linear),
``lib/generator.py`` (``masked_parameters``), ``lib/pruners.py`` (``Pruner._global_mask``, ``PX.score``)
and the pruning loop of ``train_classification.py`` (``sparse = wrr ** ((round + 1) / ROUNDS)``). Only
what depends on their CONFIG is cut (the data loader is used as given); the classifier is skipped by
name as there (``fc``: the repository's classifier, or the ridge head ``fc.linear`` of
``transfer_classification.py``). The ReLU6 variant adds one thing, marked below: ``F.hardtanh``
intercepted as ``F.relu`` is, with the gate ``0 < x < 6``. One change, marked, is pait's: ``pk``'s
BatchNorm on running statistics; the reference as published (train mode) is checked to be degenerate
there: on all-ones images its conv scores are rounding noise. ``count`` (``int`` as published) lets one
test round the pruned count as pait does.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pait.errors import ConfigError
from pait.heads import HeadedModel
from pait.masks import global_mask
from pait.scores import get_score
from tests.scores import tiny

# ---------------------------------------------------------------- the reference, ported


class RefConv2d(nn.Conv2d):
    """lib/layers.py Conv2d: weight_mask (and bias_mask) buffers multiplied in the forward."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("weight_mask", torch.ones(self.weight.shape))
        if self.bias is not None:
            self.register_buffer("bias_mask", torch.ones(self.bias.shape))

    def forward(self, input):
        b = self.bias_mask * self.bias if self.bias is not None else self.bias
        return self._conv_forward(input, self.weight_mask * self.weight, b)


class RefLinear(nn.Linear):
    """lib/layers.py Linear."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("weight_mask", torch.ones(self.weight.shape))
        if self.bias is not None:
            self.register_buffer("bias_mask", torch.ones(self.bias.shape))

    def forward(self, input):
        b = self.bias_mask * self.bias if self.bias is not None else self.bias
        return F.linear(input, self.weight_mask * self.weight, b)


def masked_parameters(model):
    """lib/generator.py masked_parameters(model, bias=False, batchnorm=False, residual=False)."""
    for module in model.modules():
        if isinstance(module, (RefLinear, RefConv2d)):
            masks = [buf for name, buf in module.named_buffers() if "mask" in name]
            for mask, param in zip(masks, module.parameters(recurse=False)):
                if param is not module.bias:
                    yield mask, param


class ReferencePX:
    """lib/pruners.py Pruner._global_mask and PX.score."""

    def __init__(self, masked_parameters, relu6: bool = False, pk_running_statistics: bool = True, count=int):
        self.masked_parameters = list(masked_parameters)
        self.scores = {}
        self.orig_relu = F.relu
        self.orig_leakyrelu = F.leaky_relu
        self.orig_hardtanh = F.hardtanh
        self.relu6 = relu6
        self.pk_running_statistics = pk_running_statistics
        self.count = count

    def _global_mask(self, sparsity):
        global_scores = torch.cat([torch.flatten(v) for v in self.scores.values()])
        k = self.count((1.0 - sparsity) * global_scores.numel())  # int in the reference
        if not k < 1:
            threshold, _ = torch.kthvalue(global_scores, k)
            for mask, param in self.masked_parameters:
                score = self.scores[id(param)]
                zero = torch.tensor([0.]).to(mask.device)
                one = torch.tensor([1.]).to(mask.device)
                mask.copy_(torch.where(score <= threshold, zero, one))

    def score(self, model, dataloader):
        balanced_dset = dataloader

        def hook_activation(input, inplace=False):  # overrides F.relu
            self.activation_maps.append(input.clone().detach())
            return self.orig_relu(input, inplace)

        def apply_activation(input, inplace=False):  # overrides F.relu
            map = torch.where(self.activation_maps.pop(0) > 0, 1.0, 0.0)
            return input * map

        def hook_hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):  # added: ReLU6 (not in the reference)
            open_ = (input > min_val) & (input < max_val)  # recorded so that apply_activation's '> 0' is this gate
            self.activation_maps.append(torch.where(open_, 1.0, -1.0))
            return self.orig_hardtanh(input, min_val, max_val, inplace)

        pk_model = copy.deepcopy(model).train()
        if self.pk_running_statistics:  # changed (pait's one intentional change): pk's BatchNorm in eval mode
            for module in pk_model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        with torch.no_grad():
            skip_layers = ['weight_mask', 'bias_mask', 'bn', 'fc']
            for name, param in pk_model.state_dict().items():
                if any([n in name for n in skip_layers]):
                    continue
                param.pow_(2)

        jvf_model = copy.deepcopy(model).train()
        with torch.no_grad():
            skip_layers = ['weight_mask', 'bias_mask', 'bn', 'fc']
            for name, param in jvf_model.state_dict().items():
                if any([n in name for n in skip_layers]):
                    continue
                param.fill_(1.0)

        activation_model = copy.deepcopy(model).eval()

        try:
            for data_tuple in balanced_dset:
                data, y = data_tuple

                with torch.no_grad():
                    F.relu = hook_activation
                    F.leaky_relu = hook_activation
                    if self.relu6:
                        F.hardtanh = hook_hardtanh
                    self.activation_maps = []
                    activation_model(data)

                    F.relu = apply_activation
                    if self.relu6:
                        F.hardtanh = lambda input, *args, **kwargs: apply_activation(input)
                    z1 = jvf_model(data.pow(2))

                F.relu = lambda input, *args, **kwargs: input
                F.leaky_relu = lambda input, *args, **kwargs: input
                if self.relu6:
                    F.hardtanh = lambda input, *args, **kwargs: input
                z2 = pk_model(torch.ones_like(data))
                (z1 * z2).sum().backward()
        finally:
            F.relu = self.orig_relu
            F.leaky_relu = self.orig_leakyrelu
            F.hardtanh = self.orig_hardtanh

        with torch.no_grad():
            for (m, p), (_, p1) in zip(self.masked_parameters, masked_parameters(pk_model)):
                if p1.grad is None:
                    self.scores[id(p)] = torch.zeros_like(p)
                    continue
                self.scores[id(p)] = torch.clone(p1.grad.abs() * p.pow(2))


def reference_prune(model, dataloader, weight_remaining_ratio, rounds, relu6=False, pk_running_statistics=True,
                    count=int):
    """train_classification.py: the pruning-at-init loop for PX (scope 'global')."""
    pruner = ReferencePX(masked_parameters(model), relu6, pk_running_statistics, count)
    model.eval()
    for round in range(rounds):
        sparse = weight_remaining_ratio ** ((round + 1) / rounds)
        pruner.score(model, dataloader)
        pruner._global_mask(sparse)
    return pruner


# ---------------------------------------------------------------- tiny models, both ways


class Net(nn.Module):
    """conv(bias)-ReLU-maxpool, conv-bn-ReLU, conv-bn + 1x1 conv-bn shortcut, ReLU, mean, linear(bias)-ReLU, fc."""

    def __init__(self, conv=nn.Conv2d, linear=nn.Linear, act=nn.ReLU, fc: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv(3, 4, 3, padding=1, bias=True)
        self.act1 = act()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = conv(4, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.act2 = act()
        self.conv3 = conv(6, 6, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(6)
        self.short = conv(4, 6, 1, bias=False)
        self.bn_short = nn.BatchNorm2d(6)
        self.act3 = act()
        self.hidden = linear(6, 5, bias=True)
        self.act4 = act()
        self.fc = fc if fc is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(self.act1(self.conv1(x)))
        y = self.bn3(self.conv3(self.act2(self.bn2(self.conv2(x)))))
        x = self.act3(y + self.bn_short(self.short(x)))
        return self.fc(self.act4(self.hidden(x.mean((2, 3)))))


class RidgeHead(nn.Module):
    """lib/models/heads.py RidgeClassificationHead, as transfer_classification.py sets it as ``model.fc``."""

    def __init__(self, head: Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(head.shape[0], head.shape[1], bias=False).double()
        with torch.no_grad():
            self.linear.weight.copy_(head.T)
        self.linear.requires_grad_(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


SCORED = ("conv1", "conv2", "conv3", "short", "hidden")


def pair(classifier: str, act=nn.ReLU, scale: float = 1.0):
    """(pait's model, its params, the reference's model): the same weights; classifier 'fc' or 'ridge'."""
    torch.manual_seed(0)
    plain = Net(act=act, fc=nn.Linear(5, tiny.CLASSES)).double()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in (plain.bn2, plain.bn3, plain.bn_short):
            bn.weight.copy_(torch.rand(6, generator=gen, dtype=torch.float64) + 0.5)
            bn.bias.copy_(0.6 * torch.rand(6, generator=gen, dtype=torch.float64) - 0.3)
            bn.running_mean.copy_(torch.rand(6, generator=gen, dtype=torch.float64) - 0.5)
            bn.running_var.copy_(1.5 * torch.rand(6, generator=gen, dtype=torch.float64) + 0.5)
        for layer in SCORED:
            getattr(plain, layer).weight.mul_(scale)
    head = 0.5 * torch.randn(5, tiny.CLASSES, generator=gen, dtype=torch.float64)
    ref = Net(RefConv2d, RefLinear, act, nn.Linear(5, tiny.CLASSES) if classifier == "fc" else RidgeHead(head)).double()
    state = {k: v for k, v in plain.state_dict().items() if classifier == "fc" or not k.startswith("fc.")}
    missing, unexpected = ref.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("_mask") or k.startswith("fc.") for k in missing)
    if classifier == "fc":
        model, own = plain.eval(), plain
    else:
        plain.fc = nn.Identity()
        model, own = HeadedModel(plain, lambda m, x: m(x), head).eval(), plain
    params = {f"{layer}.weight": getattr(own, layer).weight for layer in SCORED}
    return model, params, ref.eval()


def reference_scores(ref: nn.Module, pruner: ReferencePX) -> dict[str, Tensor]:
    return {f"{layer}.weight": pruner.scores[id(getattr(ref, layer).weight)] for layer in SCORED}


def reference_mask(ref: nn.Module) -> dict[str, Tensor]:
    return {f"{layer}.weight": getattr(ref, layer).weight_mask.bool() for layer in SCORED}


def compare(got: dict[str, Tensor], want: dict[str, Tensor]) -> tuple[float, float]:
    """(max abs difference, max difference relative to the largest reference score)."""
    diff = max(float((got[k] - want[k]).abs().max()) for k in want)
    return diff, diff / max(float(w.abs().max()) for w in want.values())


def kept(mask: dict[str, Tensor]) -> int:
    return sum(int(m.sum()) for m in mask.values())


def total(mask: dict[str, Tensor]) -> int:
    return sum(m.numel() for m in mask.values())


def same_count(scores: dict[str, Tensor], reference: dict[str, Tensor]) -> dict[str, Tensor]:
    """pait's mask of ``scores`` keeping as many weights as the reference's mask (it truncates the count)."""
    return global_mask(scores, 1.0 - kept(reference) / total(reference))


def iou(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    inter = sum(int((a[k] & b[k]).sum()) for k in a)
    union = sum(int((a[k] | b[k]).sum()) for k in a)
    return inter / union


DATA = tiny.batches(n=6, batch=3)
pytestmark = pytest.mark.filterwarnings("ignore:global_mask prunes these tensors entirely")  # conv2 at 80%, both

# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("classifier", ["fc", "ridge"])
def test_one_round_equals_the_reference(classifier):
    model, params, ref = pair(classifier)
    got = get_score("px")(model, DATA, params, sparsity=0.5, rounds=1)
    want = reference_scores(ref, reference_prune(ref, DATA, 0.5, 1))
    abs_diff, rel_diff = compare(got, want)
    assert rel_diff < 1e-12, (abs_diff, rel_diff)
    assert all(float(w.min()) > 0 for w in want.values())  # no weight scores 0 before pruning


@pytest.mark.parametrize("classifier", ["fc", "ridge"])
def test_the_published_reference_scores_no_conv_weight_on_a_batchnorm_resnet(classifier):
    """Its pk_model in train mode on identical all-ones images: every path into the mean pool ends in a
    BatchNorm on batch statistics, whose spatial mean is its shift, so R does not depend on any conv."""
    _, _, ref = pair(classifier)
    scores = reference_scores(ref, reference_prune(ref, DATA, 0.5, 1, pk_running_statistics=False))
    convs = max(float(scores[f"{layer}.weight"].max()) for layer in SCORED[:-1])
    assert convs < 1e-12 * float(scores["hidden.weight"].max())


@pytest.mark.parametrize("classifier", ["fc", "ridge"])
def test_iterative_rounds_equal_the_reference(classifier):
    model, params, ref = pair(classifier)
    got = get_score("px")(model, DATA, params, sparsity=0.8, rounds=10)
    pruner = reference_prune(ref, DATA, 0.2, 10)
    abs_diff, rel_diff = compare(got, reference_scores(ref, pruner))
    theirs = reference_mask(ref)
    assert rel_diff < 1e-10, (abs_diff, rel_diff)
    assert iou(same_count(got, theirs), theirs) == 1.0
    assert kept(global_mask(got, 0.8)) == round(0.2 * total(theirs)) != kept(theirs)  # int() vs round()
    one_shot = get_score("px")(model, DATA, params, sparsity=0.8, rounds=1)
    assert iou(same_count(one_shot, theirs), theirs) < 0.9  # the rounds matter on this net


def test_the_default_100_rounds_equal_the_reference_with_its_count_rounded():
    """Over 100 rounds the reference's truncated count (int) differs from pait's (round) in some round, and
    the paths part; with the count rounded as pait's they agree to rounding."""
    model, params, ref = pair("ridge")
    got = get_score("px")(model, DATA, params, sparsity=0.8)
    pruner = reference_prune(ref, DATA, 0.2, 100, count=round)
    _, rel_diff = compare(got, reference_scores(ref, pruner))
    assert rel_diff < 1e-10
    assert iou(global_mask(got, 0.8), reference_mask(ref)) == 1.0


def test_relu6_is_gated_by_its_derivative():
    model, params, ref = pair("ridge", act=nn.ReLU6, scale=3.0)
    data = [(4.0 * x, y) for x, y in DATA]
    with torch.no_grad():
        assert any(float(ref.conv1(x).max()) > 6 for x, _ in data)  # some units saturate on the data
    got = get_score("px")(model, data, params, sparsity=0.7, rounds=4)
    pruner = reference_prune(ref, data, 0.3, 4, relu6=True)
    _, rel_diff = compare(got, reference_scores(ref, pruner))
    theirs = reference_mask(ref)
    assert rel_diff < 1e-10
    assert iou(same_count(got, theirs), theirs) == 1.0
    as_relu, relu_params, _ = pair("ridge", act=nn.ReLU, scale=3.0)
    _, rel_to_relu = compare(got, get_score("px")(as_relu, data, relu_params, sparsity=0.7, rounds=4))
    assert rel_to_relu > 1e-6  # saturated units close their paths


def test_relu6_without_saturation_is_relu():
    small = [(0.01 * x, y) for x, y in DATA]
    m6, p6, _ = pair("ridge", act=nn.ReLU6)
    m1, p1, _ = pair("ridge", act=nn.ReLU)
    a = get_score("px")(m6, small, p6, sparsity=0.5, rounds=2)
    b = get_score("px")(m1, small, p1, sparsity=0.5, rounds=2)
    assert all(torch.equal(a[k], b[k]) for k in a)


def spearman(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    x = torch.cat([t.reshape(-1) for t in a.values()])
    y = torch.cat([t.reshape(-1) for t in b.values()])
    rx, ry = (v.argsort().argsort().double() for v in (x, y))
    return float(torch.corrcoef(torch.stack([rx, ry]))[0, 1])


@pytest.mark.parametrize("classifier", ["fc", "ridge"])
def test_two_unrelated_data_sets_rank_the_weights_differently(classifier):
    model, params, _ = pair(classifier)
    signs = torch.tensor([(-1.0) ** (i + j) for i in range(8) for j in range(8)], dtype=torch.float64).view(8, 8)
    checkers = [(signs * torch.tensor([1.0, -1.0, 2.0], dtype=torch.float64).view(1, 3, 1, 1).expand(3, 3, 8, 8),
                 torch.zeros(3, dtype=torch.long))]  # unlike the Gaussian noise of DATA
    a = get_score("px")(model, DATA, params, sparsity=0.5, rounds=10)
    b = get_score("px")(model, checkers, params, sparsity=0.5, rounds=10)
    assert spearman(a, b) < 0.98
    assert iou(global_mask(a, 0.5), global_mask(b, 0.5)) < 1.0


def test_the_callers_model_is_left_as_it_was():
    model, params, _ = pair("ridge", act=nn.ReLU6)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    get_score("px")(model, DATA, params, sparsity=0.5, rounds=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model.backbone.act1, nn.ReLU6) and not model.training
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("rounds", [0, -3, 2.5, True])
def test_rounds_must_be_a_positive_integer(rounds):
    model, params, _ = pair("fc")
    with pytest.raises(ConfigError, match="rounds"):
        get_score("px")(model, DATA, params, sparsity=0.5, rounds=rounds)


def test_a_batchnorm_with_one_value_per_channel_is_refused_in_one_line():
    model, params, _ = pair("fc")
    with pytest.raises(ConfigError, match="one value per channel"):
        get_score("px")(model, tiny.batches(n=2, batch=1, shape=(3, 2, 2)), params, rounds=1)
