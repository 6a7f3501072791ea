import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pait.errors import ConfigError
from pait.prune.obs import obs_prune
from pait.scores.kfac import kfac_factors
from pait.prune.sequential import sequential_prune
from pait.prune.sparsegpt import reconstruct
from tests.scores import tiny


def _random_mask(params, density=0.6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(p.shape, generator=gen) < density for n, p in params.items() if p.ndim > 1}


def _inputs(model, layers, x):
    """What each module of ``layers`` receives on ``x`` in the model's current state."""
    seen = {}
    handles = [m.register_forward_pre_hook(lambda mod, inp, name=n: seen.setdefault(name, inp[0].detach()))
               for n, m in layers.items()]
    model(x)
    for h in handles:
        h.remove()
    return seen


def _rows(module, x):
    """Per group: the input rows of a Linear or Conv2d, with a ones column when it has a bias."""
    if isinstance(module, nn.Conv2d):
        g = module.groups
        cols = [F.unfold(xg, module.kernel_size, padding=module.padding, stride=module.stride).transpose(1, 2)
                .reshape(-1, module.weight[0].numel()) for xg in x.chunk(g, dim=1)]
    else:
        g, cols = 1, [x.reshape(-1, x.shape[-1])]
    if module.bias is not None:
        cols = [torch.cat([c, torch.ones(len(c), 1, dtype=c.dtype)], 1) for c in cols]
    return cols


def _least_squares(module, w0, b0, keep, x):
    """Reference: each row's kept weights (and bias) by lstsq against the unpruned row on the same inputs."""
    g = getattr(module, "groups", 1)
    w0 = w0.reshape(g, w0.shape[0] // g, -1)
    keep = keep.reshape(w0.shape)
    if b0 is not None:
        w0 = torch.cat([w0, b0.reshape(g, -1, 1)], 2)
        keep = torch.cat([keep, torch.ones(*keep.shape[:2], 1, dtype=torch.bool)], 2)
    out = torch.zeros_like(w0)
    for gi, rows in enumerate(_rows(module, x)):
        for k in range(w0.shape[1]):
            cols = keep[gi, k]
            out[gi, k, cols] = torch.linalg.lstsq(rows[:, cols], rows @ w0[gi, k]).solution
    return out


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(6, 6, 3, padding=1, groups=6, bias=False), nn.Tanh(),  # depthwise
                         nn.Conv2d(6, 4, 1, groups=2), nn.Tanh(),  # grouped, with bias
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(4 * 2 * 2, 5)).double().eval()


def test_every_layer_is_the_least_squares_fit_on_the_inputs_of_the_already_pruned_network():
    model = _net()
    data = tiny.batches(n=30, batch=8)
    x = torch.cat([b[0] for b in data])
    params = dict(model.named_parameters())
    mask = _random_mask(params)
    w0 = {n: p.detach().clone() for n, p in params.items()}
    applied = sequential_prune(model, data, params, mask, damping=0.0)
    layers = {"0": model[0], "2": model[2], "4": model[4], "8": model[8]}
    inputs = _inputs(model, layers, x)  # each layer's inputs are final once the layers before it are
    for name, module in layers.items():
        key = f"{name}.weight"
        assert torch.equal(applied[key], mask[key])
        assert (params[key][~mask[key]] == 0).all()
        expected = _least_squares(module, w0[key], w0.get(f"{name}.bias"), mask[key], inputs[name])
        got = params[key].detach().reshape(expected.shape[0], expected.shape[1], -1)
        if module.bias is not None:
            got = torch.cat([got, params[f"{name}.bias"].detach().reshape(expected.shape[0], -1, 1)], 2)
        assert torch.allclose(got, expected, atol=1e-8), name


def test_the_second_layers_hessian_comes_from_the_pruned_first_layer():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)).double().eval()
    data = tiny.batches(n=40, batch=8, shape=(6,))
    x = torch.cat([b[0] for b in data])
    params = dict(model.named_parameters())
    mask = _random_mask(params, density=0.5, seed=3)
    w0 = {n: p.detach().clone() for n, p in params.items()}
    unpruned_inputs = torch.tanh(x @ w0["0.weight"].T + w0["0.bias"])
    sequential_prune(model, data, params, mask, damping=0.0)
    pruned_inputs = torch.tanh(model[0](x))
    from_pruned = _least_squares(model[2], w0["2.weight"], w0["2.bias"], mask["2.weight"], pruned_inputs)
    from_unpruned = _least_squares(model[2], w0["2.weight"], w0["2.bias"], mask["2.weight"], unpruned_inputs)
    got = torch.cat([model[2].weight, model[2].bias[:, None]], 1).detach()
    assert torch.allclose(got, from_pruned[0], atol=1e-9)
    assert not torch.allclose(got, from_unpruned[0], atol=1e-3)


def _output_error(layer, x, reference):
    return (layer(x) - reference).pow(2).mean().item()


def test_one_layer_sequential_error_is_at_most_obs_error_which_is_below_no_update():
    torch.manual_seed(2)
    data = tiny.batches(n=60, batch=20, shape=(16,))
    x = torch.cat([b[0] for b in data]) @ torch.randn(16, 16, dtype=torch.float64)
    data = list(zip(x.split(20), [b[1] for b in data]))
    base = nn.Sequential(nn.Linear(16, 6)).double().eval()
    reference = base(x).detach()
    mask = _random_mask(dict(base.named_parameters()), density=0.5, seed=5)
    errors = {}
    for method in ("none", "obs", "sequential", "sweep"):
        model = nn.Sequential(nn.Linear(16, 6)).double().eval()
        model.load_state_dict(base.state_dict())
        params = dict(model.named_parameters())
        factors = kfac_factors(model, data, {"0.weight": params["0.weight"]}, include_bias=True)
        with torch.no_grad():
            if method == "none":
                params["0.weight"].mul_(mask["0.weight"])
            elif method == "obs":
                obs_prune(params, factors, mask, damping=1e-3)
            elif method == "sequential":
                sequential_prune(model, data, params, mask, damping=1e-3)
            else:  # SparseGPT's column sweep with the same fixed mask (not what `sequential` uses)
                h = x.T @ x / len(x)
                new, _ = reconstruct(params["0.weight"].detach()[None], h[None], mask["0.weight"][None], damping=1e-3)
                params["0.weight"].copy_(new[0])
        assert (params["0.weight"][~mask["0.weight"]] == 0).all()
        errors[method] = _output_error(model, x, reference)
    # on the first layer the inputs are the unpruned model's, so sequential is the obs update itself
    assert errors["sequential"] <= errors["obs"] * (1 + 1e-9)
    assert errors["obs"] < errors["none"]
    assert errors["sequential"] < errors["sweep"]


def test_adaptive_mode_keeps_each_layers_count_and_returns_the_mask_it_applied():
    model = _net()
    data = tiny.batches(n=8, batch=4)
    params = dict(model.named_parameters())
    mask = _random_mask(params, density=0.4)
    applied = sequential_prune(model, data, params, mask, mode="adaptive", damping=0.01, blocksize=7)
    for key, keep in mask.items():
        assert int(applied[key].sum()) == int(keep.sum())
        assert (params[key][~applied[key]] == 0).all()
        assert params[key][applied[key]].ne(0).all()
    assert any(not torch.equal(applied[k], mask[k]) for k in mask)


def test_attention_projections_and_token_linears_are_reconstructed_with_exact_masks():
    model = tiny.TinyViT().double().eval()
    data = tiny.batches(n=8, batch=4)
    x = torch.cat([b[0] for b in data])
    reference = model(x).detach()
    params = dict(model.named_parameters())
    mask = {n: m for n, m in _random_mask(params, density=0.7).items() if not n.startswith("pos")}
    plain = tiny.TinyViT().double().eval()
    with torch.no_grad():
        for n, p in plain.named_parameters():
            if n in mask:
                p.mul_(mask[n])
    assert any("in_proj_weight" in k for k in mask) and any("out_proj" in k for k in mask)
    sequential_prune(model, data, params, mask)
    for key, keep in mask.items():
        assert (params[key][~keep] == 0).all()
    assert (model(x) - reference).pow(2).mean() < (plain(x) - reference).pow(2).mean()


def test_a_layer_the_forward_never_reaches_is_named_in_the_error():
    class Partly(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(6, 4).double(), nn.Linear(4, 4).double()

        def forward(self, x):
            return self.used(x)

    model = Partly()
    params = dict(model.named_parameters())
    mask = _random_mask(params)
    with pytest.raises(ConfigError, match="unused.weight"):
        sequential_prune(model, tiny.batches(n=4, batch=2, shape=(6,)), params, mask)


def _nm_net():
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),  # 36 inputs per row: 2:4
                         nn.Conv2d(8, 8, 1, groups=2), nn.Tanh(),  # grouped, 4 per row: 2:4
                         nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.Tanh(),  # 9 per row: left dense
                         nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 6)).double().eval()


def test_adaptive_mode_with_an_nm_pattern_keeps_every_layer_nm_and_leaves_the_dense_ones_alone():
    from pait.prune.nm import nm_mask

    model = _nm_net()
    data = tiny.batches(n=12, batch=4, shape=(4, 6, 6))
    params = dict(model.named_parameters())
    weights = {n: p for n, p in params.items() if p.ndim > 1}
    mask, dense = nm_mask({n: p.detach().abs() for n, p in weights.items()}, 2, 4)
    assert dense == ["4.weight"]
    dense_before = params["4.weight"].detach().clone()
    applied = sequential_prune(model, data, params, mask, mode="adaptive", damping=0.01, nm=(2, 4))
    for key, keep in applied.items():
        assert (params[key][~keep] == 0).all(), key
        if key in dense:
            assert keep.all() and torch.equal(params[key], dense_before)
        else:
            assert (keep.reshape(keep.shape[0], -1, 4).sum(-1) == 2).all(), key
    assert any(not torch.equal(applied[k], mask[k]) for k in mask if k not in dense)  # re-selected, not held
    without = _nm_net()
    counted = sequential_prune(without, data, dict(without.named_parameters()), mask, mode="adaptive", damping=0.01)
    assert any((counted[k].reshape(counted[k].shape[0], -1, 4).sum(-1) != 2).any() for k in mask if k not in dense)


def test_sequential_nm_sweep_with_a_dead_input_equals_the_reference_port_layer_by_layer():
    from tests.test_sparsegpt import fasterprune

    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(16, 12, bias=False), nn.Tanh(), nn.Linear(12, 8, bias=False)).double().eval()
    data = tiny.batches(n=60, batch=20, shape=(16,))
    x = torch.cat([b[0] for b in data])
    x[:, 5] = 0  # a dead input of the first layer
    x = x / x[:, x.pow(2).sum(0) != 0].pow(2).mean().sqrt()  # live diagonal of H with mean 1
    data = list(zip(x.split(20), [b[1] for b in data]))
    params = dict(model.named_parameters())
    w0 = {k: params[k].detach().clone() for k in ("0.weight", "2.weight")}
    keep = {k: torch.ones_like(w, dtype=torch.bool) for k, w in w0.items()}
    applied = sequential_prune(model, data, params, keep, mode="adaptive", damping=0.01, nm=(2, 4))
    inputs = {"0.weight": x, "2.weight": torch.tanh(model[0](x)).detach()}
    for key, inp in inputs.items():
        expected, pruned = fasterprune(w0[key], inp.T @ inp / len(inp), prunen=2, prunem=4, percdamp=0.01)
        assert torch.equal(applied[key], ~pruned), key
        assert torch.allclose(params[key].detach(), expected, rtol=0, atol=1e-10), key
    assert (~applied["0.weight"][:, 5]).all()  # the dead input's weights went first
