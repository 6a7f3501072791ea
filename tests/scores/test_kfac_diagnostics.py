import math

import pytest
import torch
from torch import nn

from pait.heads import HeadedModel
from pait.layers.inverses import damping_amount
from pait.scores.kfac import kfac_factors, kfac_scores
from pait.scores.kfac_diagnostics import entry_damping_shares, factor_diagnostics, kfac_diagnostics, spectra
from tests.scores import tiny

FEATURES, INPUTS = 8, 6


def feature_layer_under_frozen_head(examples=24):
    """Linear(6 -> 8) whose outputs are the features read by a frozen head of C = 3 classes."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(INPUTS, FEATURES)).double()
    head = torch.randn(FEATURES, tiny.CLASSES, dtype=torch.float64)
    model = HeadedModel(backbone, lambda m, x: m(x), head).eval()
    data = tiny.batches(n=examples, batch=8, shape=(INPUTS,))
    params = {"w": backbone[1].weight}
    return model, data, params


def test_last_layer_output_factor_has_rank_of_the_head_and_the_input_factor_is_full():
    model, data, params = feature_layer_under_frozen_head()
    factors = kfac_factors(model, data, params, include_bias=False)
    (diag,) = kfac_diagnostics(factors, damping=1e-3)
    a, b = factors["w"]
    assert diag.b.size == FEATURES and diag.b.rank == tiny.CLASSES  # the gradients span the head's C columns
    assert diag.a.size == INPUTS and diag.a.rank == INPUTS  # 24 generic examples span the 6 inputs
    assert diag.b.rank == torch.linalg.matrix_rank(b, hermitian=True)
    assert diag.a.rank == torch.linalg.matrix_rank(a, hermitian=True)
    lam_a, lam_b = torch.linalg.eigvalsh(a), torch.linalg.eigvalsh(b)
    assert diag.a.condition == pytest.approx(float(lam_a[-1] / lam_a[0]), rel=1e-10)
    assert diag.b.condition_on_range == pytest.approx(float(lam_b[-1] / lam_b[-tiny.CLASSES]), rel=1e-10)
    delta_b = 1e-3 * float(b.diagonal().mean())
    assert diag.b.damping == pytest.approx(delta_b, rel=1e-12)
    assert diag.b.damped_condition == pytest.approx(float(lam_b[-1] + delta_b) / delta_b, rel=1e-6)
    assert diag.b.below_damping == pytest.approx((FEATURES - tiny.CLASSES) / FEATURES)


def test_entry_damping_shares_are_the_log_derivative_of_the_damped_inverse_diagonal():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 3, dtype=torch.float64, generator=gen)
    factor = x @ x.T  # rank 3 of 7
    delta, h = 0.05, 1e-6
    inv_diag = lambda d: torch.linalg.inv(factor + d * torch.eye(7, dtype=torch.float64)).diagonal()  # noqa: E731
    finite = -(inv_diag(delta * (1 + h)).log() - inv_diag(delta * (1 - h)).log()) / (math.log1p(h) - math.log1p(-h))
    got = entry_damping_shares(factor, delta)
    torch.testing.assert_close(got, finite, rtol=1e-6, atol=1e-9)
    assert ((got > 0) & (got < 1)).all()


def test_score_elasticity_is_the_mean_log_derivative_of_the_layer_score():
    model, data, params = feature_layer_under_frozen_head()
    factors = kfac_factors(model, data, params, include_bias=False)
    damping, h = 1e-2, 1e-6
    lo, hi = (kfac_scores(factors, params, damping * s)["w"] for s in (1 - h, 1 + h))
    finite = ((hi.log() - lo.log()) / (math.log1p(h) - math.log1p(-h))).mean()
    (diag,) = kfac_diagnostics(factors, damping)
    assert diag.score_damping_elasticity == pytest.approx(float(finite), rel=1e-5)


def test_rank_deficient_output_factor_is_set_by_the_damping_when_it_is_small():
    model, data, params = feature_layer_under_frozen_head()
    factors = kfac_factors(model, data, params, include_bias=False)
    (small,) = kfac_diagnostics(factors, damping=1e-8)
    assert small.b.damping_share > 0.99  # every output has a null-space part, weighted by 1 / delta
    assert small.a.damping_share < 1e-5  # full-rank A barely depends on a tiny damping
    (large,) = kfac_diagnostics(factors, damping=1e3)
    assert large.a.damping_share > 0.99 and large.b.damping_share > 0.99


def test_absolute_mode_adds_the_damping_itself():
    factor = torch.diag(torch.tensor([4.0, 2.0, 0.0], dtype=torch.float64))
    assert float(damping_amount(factor, 0.5, "absolute")) == 0.5
    assert float(damping_amount(factor, 0.5, "relative")) == pytest.approx(1.0)
    diag = factor_diagnostics(factor, 0.5, "absolute")
    assert diag.rank == 2 and diag.condition == math.inf and diag.condition_on_range == 2.0
    assert diag.noise_floor == pytest.approx(3 * torch.finfo(torch.float64).eps * 4.0)
    assert diag.below_damping == pytest.approx(1 / 3)
    assert diag.damping_share == pytest.approx((0.5 / 4.5 + 0.5 / 2.5 + 1.0) / 3)


def test_precomputed_spectra_give_the_same_diagnostics():
    model, data, params = feature_layer_under_frozen_head()
    factors = kfac_factors(model, data, params, include_bias=False)
    for damping in (1e-6, 1e-1):
        assert kfac_diagnostics(factors, damping, spectra=spectra(factors)) == kfac_diagnostics(factors, damping)
