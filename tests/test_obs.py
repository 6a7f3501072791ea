import pytest
import torch
from torch import nn

from pait.prune.obs import bias_name, obs_prune, obs_rows
from pait.layers.inverses import kfac_damped_inverse as damped_inverse
from pait.scores.kfac import kfac_factors
from tests.scores import tiny


def _dense_obs(w_aug: torch.Tensor, keep: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """delta = -H^-1 E_P (E_P^T H^-1 E_P)^-1 E_P^T w on vec(W), column-stacked (index i * out + k)."""
    vec = w_aug.T.reshape(-1)
    pruned = torch.nonzero(~keep.T.reshape(-1)).squeeze(1)
    h_inv = torch.linalg.inv(h)
    delta = -h_inv[:, pruned] @ torch.linalg.solve(h_inv[pruned][:, pruned], vec[pruned])
    return (vec + delta).reshape(w_aug.shape[1], w_aug.shape[0]).T


def test_obs_matches_the_dense_closed_form_for_a_whole_linear_layer_with_diagonal_b():
    torch.manual_seed(0)
    layer = nn.Linear(5, 4).double()
    params = dict(layer.named_parameters())
    x = torch.randn(40, 5, dtype=torch.float64)
    a_aug = torch.cat([x, torch.ones(40, 1, dtype=torch.float64)], 1)
    a = a_aug.T @ a_aug / 40
    b = torch.diag(torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64))
    keep = torch.rand(4, 5) > 0.4
    keep[0, :3] = False  # rows with different numbers of pruned entries
    keep[1] = True
    w_aug = torch.cat([layer.weight.detach(), layer.bias.detach()[:, None]], 1)
    keep_aug = torch.cat([keep, torch.ones(4, 1, dtype=torch.bool)], 1)
    damping = 1e-3
    damped_a = torch.linalg.inv(damped_inverse(a, damping)).contiguous()
    expected = _dense_obs(w_aug, keep_aug, torch.kron(damped_a, b))
    obs_prune(params, {"weight": (a, b)}, {"weight": keep}, damping=damping)
    assert torch.allclose(layer.weight, expected[:, :-1], atol=1e-10)
    assert torch.allclose(layer.bias, expected[:, -1], atol=1e-10)
    assert (layer.weight[~keep] == 0).all()
    assert not torch.allclose(layer.weight[keep], w_aug[:, :-1][keep])  # kept weights did move


def test_obs_is_the_least_squares_reconstruction_of_each_row_on_the_calibration_inputs():
    torch.manual_seed(1)
    x = torch.randn(60, 6, dtype=torch.float64)
    w = torch.randn(3, 6, dtype=torch.float64)
    keep = torch.tensor([[1, 0, 1, 0, 1, 1], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    new = obs_rows(w, keep, torch.linalg.inv(x.T @ x / 60), max_elements=7)  # tiny chunks
    for k in range(3):
        cols = keep[k]
        best = torch.linalg.lstsq(x[:, cols], x @ w[k]).solution
        assert torch.allclose(new[k, cols], best, atol=1e-9)
        assert (new[k, ~cols] == 0).all()


def test_obs_prune_on_a_cnn_keeps_the_mask_and_lowers_the_output_error_against_plain_pruning():
    model = tiny.cnn()
    data = tiny.batches(n=12, batch=4)
    params = {n: p for n, p in model.named_parameters() if p.ndim > 1}
    factors = kfac_factors(model, data, params, include_bias=True)
    gen = torch.Generator().manual_seed(0)
    mask = {n: torch.rand(p.shape, generator=gen) > 0.3 for n, p in params.items()}
    x = torch.cat([b[0] for b in data])
    reference = model(x).detach()
    plain = tiny.cnn()
    with torch.no_grad():
        for n, p in plain.named_parameters():
            if n in mask:
                p.mul_(mask[n])
    obs_prune(dict(model.named_parameters()), factors, mask)
    for n, p in params.items():
        assert (p[~mask[n]] == 0).all()
    assert (model(x) - reference).pow(2).mean() < (plain(x) - reference).pow(2).mean()


@pytest.mark.parametrize("name,bias", [("fc.weight", "fc.bias"), ("attn.in_proj_weight", "attn.in_proj_bias"), ("weight", "bias")])
def test_bias_name(name, bias):
    assert bias_name(name) == bias
