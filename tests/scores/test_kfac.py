import pytest
import torch
from curvlinops import KFACLinearOperator
from torch import nn

from pait.errors import ConfigError
from pait.scores import get_score
from pait.layers.inverses import kfac_damped_inverse as damped_inverse
from pait.scores.kfac import kfac_factors
from tests.scores import tiny


def _with_ones(a, bias):
    return torch.cat([a, a.new_ones(a.shape[0], 1)], 1) if bias else a


def factors_by_loop(model, data, modules):
    """A and B from their definitions: one example at a time, conv positions by explicit slicing."""
    sums = {k: [0, 0, 0] for k in modules}  # aa^T, gg^T, rows
    count = 0
    for x, y in data:
        for n in range(len(x)):
            seen = {}
            hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, (i[0], o)))
                     for k, m in modules.items()]
            out = model(x[n : n + 1])
            for h in hooks:
                h.remove()
            outs = [seen[k][1] for k in modules]
            grads = torch.autograd.grad(tiny.mse(out, y[n : n + 1]), outs)
            for (k, m), g in zip(modules.items(), grads):
                inp = seen[k][0][0]
                if isinstance(m, nn.Conv2d):
                    a, g = tiny.conv_patches_by_loop(m, inp), g[0].flatten(1).T
                else:
                    a, g = inp.reshape(-1, inp.shape[-1]), g.reshape(-1, g.shape[-1])
                a = _with_ones(a, m.bias is not None)
                for t in range(len(a)):
                    sums[k][0] = sums[k][0] + torch.outer(a[t], a[t])
                    sums[k][2] += 1
                for t in range(len(g)):
                    sums[k][1] = sums[k][1] + torch.outer(g[t], g[t])
            count += 1
    return {k: (aa / rows, gg / count) for k, (aa, gg, rows) in sums.items()}


def mha_factors_by_loop(model, data):
    """A and B of every attention projection of tiny.TinyViT, from the attention's definition."""
    sums = {}
    count = 0
    for x, y in data:
        for n in range(len(x)):
            seen = {}
            hooks = [norm.register_forward_hook(lambda m, i, o, j=j: seen.__setitem__(j, o[0]))
                     for j, norm in enumerate(model.norms1)]
            taps = [(torch.zeros(4, 24, dtype=x.dtype, requires_grad=True),
                     torch.zeros(4, 8, dtype=x.dtype, requires_grad=True)) for _ in model.attns]
            out = model(x[n : n + 1], taps=taps)
            for h in hooks:
                h.remove()
            grads = torch.autograd.grad(tiny.mse(out, y[n : n + 1]), [d for pair in taps for d in pair])
            for j, attn in enumerate(model.attns):
                h = seen[j].detach()
                heads = (tiny.attention(attn, h, None, None) - attn.out_proj.bias) @ torch.linalg.pinv(attn.out_proj.weight.T)
                for key, a, g in ((f"{j}.in", h, grads[2 * j]), (f"{j}.out", heads, grads[2 * j + 1])):
                    a = _with_ones(a, True)
                    aa, gg, rows = sums.get(key, (0, 0, 0))
                    sums[key] = (aa + sum(torch.outer(r, r) for r in a), gg + sum(torch.outer(r, r) for r in g), rows + len(a))
            count += 1
    return {k: (aa / rows, gg / count) for k, (aa, gg, rows) in sums.items()}


@pytest.mark.parametrize("build, names", [
    (tiny.mlp, ["1.weight", "3.weight", "5.weight"]),
    (tiny.cnn, ["0.weight", "3.weight", "7.weight"]),
    (tiny.vit, ["patch.weight", "mlps.0.0.weight", "mlps.1.2.weight", "head.weight"]),
], ids=["mlp", "cnn_bn_eval", "vit_linear_tokens"])
def test_kfac_factors_match_definition_and_curvlinops(build, names):
    model, data = build(), tiny.batches()
    own, mods = dict(model.named_parameters()), dict(model.named_modules())
    params = {f"k{i}": own[n] for i, n in enumerate(names)}  # keys are not the model's names
    modules = {f"k{i}": mods[n.rsplit(".", 1)[0]] for i, n in enumerate(names)}
    got = kfac_factors(model, data, params)
    expected = factors_by_loop(model, data, modules)
    with_bias = [p for m in modules.values() for p in (m.weight, m.bias) if p is not None]  # joint weight-bias A
    op = KFACLinearOperator(model, nn.MSELoss(), with_bias, [(x, tiny.one_hot(y)) for x, y in data],
                            fisher_type="empirical", kfac_approx="expand", separate_weight_and_bias=False,
                            check_deterministic=False)
    op.compute_kronecker_factors()
    for i, n in enumerate(names):
        a, b = got[f"k{i}"]
        torch.testing.assert_close(a, expected[f"k{i}"][0], rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(b, expected[f"k{i}"][1], rtol=1e-8, atol=1e-14)
        mod = n.rsplit(".", 1)[0]
        torch.testing.assert_close(a, op._input_covariances[mod], rtol=1e-8, atol=1e-12)
        torch.testing.assert_close(b * tiny.CLASSES, op._gradient_covariances[mod], rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("batch_first", [True, False], ids=["batch_first", "seq_first"])
def test_kfac_factors_of_attention_projections_match_definition(batch_first):
    model, data = tiny.vit(batch_first), tiny.batches()
    params = {}
    for j, attn in enumerate(model.attns):
        params[f"{j}.in"], params[f"{j}.out"] = attn.in_proj_weight, attn.out_proj.weight
    got = kfac_factors(model, data, params)
    expected = mha_factors_by_loop(model, data)
    for k in params:
        torch.testing.assert_close(got[k][0], expected[k][0], rtol=1e-8, atol=1e-10)
        torch.testing.assert_close(got[k][1], expected[k][1], rtol=1e-8, atol=1e-14)


def test_kfac_score_on_one_linear_layer_equals_dense_inverse():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, tiny.CLASSES)).double()
    data = tiny.batches(n=8, batch=4, shape=(3, 2, 2))
    w = model[1].weight
    damping = 1e-2
    (a, b), = kfac_factors(model, data, {"w": w}, include_bias=False).values()
    damp = lambda f: f + damping * f.diagonal().mean() * torch.eye(len(f), dtype=f.dtype)  # noqa: E731
    dense = torch.linalg.inv(torch.kron(damp(a), damp(b)))  # acts on the column-stacked vec(W)
    expected = w.detach().T.reshape(-1).pow(2) / dense.diagonal()
    got = get_score("kfac")(model, data, {"w": w}, damping=damping)["w"]
    torch.testing.assert_close(got.T.reshape(-1), expected, rtol=1e-8, atol=1e-14)
    torch.testing.assert_close(damped_inverse(a, damping), torch.linalg.inv(damp(a)))


def _one_linear(out_features=tiny.CLASSES):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, out_features)).double()
    return model, tiny.batches(n=8, batch=4, shape=(3, 2, 2))


def test_kfac_score_with_absolute_damping_equals_dense_inverse():
    model, data = _one_linear()
    w = model[1].weight
    damping = 1e-3
    (a, b), = kfac_factors(model, data, {"w": w}, include_bias=False).values()
    eye = lambda f: torch.eye(len(f), dtype=f.dtype)  # noqa: E731
    dense = torch.linalg.inv(torch.kron(a + damping * eye(a), b + damping * eye(b)))
    expected = w.detach().T.reshape(-1).pow(2) / dense.diagonal()
    got = get_score("kfac")(model, data, {"w": w}, damping=damping, damping_mode="absolute")["w"]
    torch.testing.assert_close(got.T.reshape(-1), expected, rtol=1e-8, atol=1e-14)
    assert not torch.allclose(got, get_score("kfac")(model, data, {"w": w}, damping=damping)["w"])


def test_kfac_mean_normalisation_gives_each_layer_mean_one_and_keeps_its_order():
    model, data = tiny.mlp(), tiny.batches()
    own = dict(model.named_parameters())
    params = {n: own[n] for n in ("1.weight", "3.weight", "5.weight")}
    plain = get_score("kfac")(model, data, params)
    normed = get_score("kfac")(model, data, params, normalize="mean")
    for n in params:
        torch.testing.assert_close(normed[n].mean(), torch.tensor(1.0, dtype=torch.float64))
        torch.testing.assert_close(normed[n], plain[n] / plain[n].mean())


@pytest.mark.parametrize("option", [{"damping_mode": "pi"}, {"normalize": "max"}])
def test_kfac_rejects_unknown_options_before_the_pass(option):
    model, data = _one_linear()
    with pytest.raises(ConfigError, match=next(iter(option))):
        get_score("kfac")(model, [], {"w": model[1].weight}, **option)


def test_kfac_names_a_damping_too_small_for_a_singular_factor():
    model, data = _one_linear(out_features=20)  # 8 examples: A (12 x 12) has rank 8
    (a, _), = kfac_factors(model, data, {"w": model[1].weight}, include_bias=False).values()
    a = a - 1e-6 * torch.eye(len(a), dtype=a.dtype)  # round-off made a null direction slightly negative
    with pytest.raises(ConfigError, match="damping 1e-09"):
        damped_inverse(a, 1e-9)
    assert (damped_inverse(a, 1e-1).diagonal() > 0).all()
