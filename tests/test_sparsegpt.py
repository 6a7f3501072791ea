import pytest
import torch

from pait.prune.obs import obs_rows
from pait.prune.sparsegpt import block_counts, reconstruct


def _problem(groups=2, rows=4, d=10, n=80, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(groups, n, d, generator=gen, dtype=torch.float64) @ torch.randn(d, d, generator=gen, dtype=torch.float64)
    w = torch.randn(groups, rows, d, generator=gen, dtype=torch.float64)
    keep = torch.rand(groups, rows, d, generator=gen) > 0.45
    return x, x.transpose(1, 2) @ x / n, w, keep


def _damped(h, damping):
    eye = torch.eye(h.shape[-1], dtype=h.dtype)
    return h + damping * h.diagonal(dim1=-2, dim2=-1).mean(-1)[:, None, None] * eye


def _unblocked(w, h, keep):
    """Dense reference: column after column, the OBS removal of each pruned weight with the explicit
    inverse of the Hessian over the columns not yet visited."""
    out = w.clone()
    for g in range(w.shape[0]):
        for k in range(w.shape[1]):
            row = out[g, k]
            for i in range(w.shape[2]):
                if not keep[g, k, i]:
                    inv = torch.linalg.inv(h[g, i:, i:])
                    row[i:] -= row[i] / inv[0, 0] * inv[0]
    return out


@pytest.mark.parametrize("blocksize", [1, 3, 4, 128])
def test_block_lazy_update_equals_the_unblocked_column_by_column_obs(blocksize):
    _, h, w, keep = _problem()
    new, kept = reconstruct(w, h, keep, damping=0.01, blocksize=blocksize)
    expected = _unblocked(w, _damped(h, 0.01), keep)
    assert torch.equal(kept, keep)
    assert torch.allclose(new, expected, atol=1e-10)
    assert (new[~keep] == 0).all()
    assert not torch.allclose(new[keep], w[keep])


def test_with_pruned_columns_first_it_is_the_per_row_least_squares_optimum():
    x, h, w, _ = _problem(groups=1, d=8)
    keep = torch.ones_like(w, dtype=torch.bool)
    keep[0, 0, :3] = False
    keep[0, 1, :1] = False
    keep[0, 2, :5] = False
    new, _ = reconstruct(w, h, keep, damping=0.0, blocksize=3)
    for k in range(w.shape[1]):
        cols = keep[0, k]
        best = torch.linalg.lstsq(x[0][:, cols], x[0] @ w[0, k]).solution
        assert torch.allclose(new[0, k, cols], best, atol=1e-9)
    exact = obs_rows(w[0], keep[0], torch.linalg.inv(h[0]))
    assert torch.allclose(new[0], exact, atol=1e-9)


def test_adaptive_mode_prunes_the_exact_count_and_matches_the_reference_on_its_own_mask():
    _, h, w, _ = _problem(rows=3, d=11)
    new, kept = reconstruct(w, h, n_pruned=29, damping=0.01, blocksize=4, protected=1)
    assert int((~kept).sum()) == 29
    assert kept[:, :, -1].all()  # the protected (bias) column
    assert [int((~kept[:, :, i:i + 4]).sum()) for i in (0, 4, 8)] == block_counts(29, 10, 4)
    assert torch.allclose(new, _unblocked(w, _damped(h, 0.01), kept), atol=1e-10)
    assert (new[~kept] == 0).all()


def test_adaptive_selection_picks_the_smallest_obs_saliency_in_the_block():
    h = torch.eye(4, dtype=torch.float64)[None]
    w = torch.tensor([[[1.0, -0.1, 3.0, 0.2], [0.05, 2.0, -0.3, 4.0]]], dtype=torch.float64)
    _, kept = reconstruct(w, h, n_pruned=3, damping=0.0, blocksize=4)
    assert torch.equal(~kept[0], torch.tensor([[False, True, False, True], [True, False, False, False]]))


def test_dead_inputs_are_not_updated_and_do_not_break_the_cholesky():
    _, h, w, keep = _problem(groups=1)
    h[:, 2, :] = 0
    h[:, :, 2] = 0
    new, _ = reconstruct(w, h, keep, damping=0.01)
    assert torch.isfinite(new).all()
    assert torch.equal(new[0, :, 2], torch.where(keep[0, :, 2], w[0, :, 2], 0.0))


def test_block_counts_sum_exactly():
    assert block_counts(10, 7, 3) == [4, 5, 1]
    assert sum(block_counts(1234, 4608, 128)) == 1234


def fasterprune(W, H, counts=None, prunen=0, prunem=0, blocksize=128, percdamp=0.01):
    """``SparseGPT.fasterprune`` of IST-DASLab/sparsegpt (``sparsegpt.py``), ported as an oracle for one layer.

    Kept as written, but for: the layer's ``W`` (rows, d) and ``H`` (d, d) are arguments and the
    result is returned as (W, pruned) instead of written into a module; float64 (the reference casts to
    float32); ``sparsity`` is replaced by the number of entries to prune in each block, ``counts``
    (``thresh`` is the ``count``-th smallest saliency: the reference takes index ``int(numel * sparsity)``,
    which prunes one more than the fraction, the off-by-one SparseGPT has); no quantizer, losses,
    timing or CUDA calls. The mask is returned so it can be compared.
    """
    W = W.clone().double()
    H = H.clone().double()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    pruned = torch.zeros_like(W, dtype=torch.bool)
    for b, i1 in enumerate(range(0, columns, blocksize)):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prunen == 0:
            tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = torch.sort(tmp.flatten())[0][counts[b] - 1]
            mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(W1) == 1
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if prunen != 0 and i % prunem == 0:
                tmp = W1[:, i:(i + prunem)] ** 2 / (torch.diag(Hinv1)[i:(i + prunem)].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        pruned[:, i1:i2] = mask1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W, pruned


def _dead_problem(rows=32, d=16, dead=(5,), seed=1):
    """A layer whose inputs ``dead`` are always zero; H scaled so its live diagonal has mean 1 (where the
    reference's unit dead diagonal and pait's mean-of-live one coincide)."""
    x, h, w, _ = _problem(groups=1, rows=rows, d=d, n=200, seed=seed)
    x[:, :, list(dead)] = 0
    h = x.transpose(1, 2) @ x / x.shape[1]
    live = h[0].diagonal() != 0
    return h / h[0].diagonal()[live].mean(), w * 3  # larger weights on the dead column than most live ones


def test_adaptive_sweep_with_a_dead_column_equals_the_reference_port():
    h, w = _dead_problem()
    counts = block_counts(200, 16, 8)
    new, kept = reconstruct(w, h, n_pruned=200, damping=0.01, blocksize=8)
    expected, pruned = fasterprune(w[0], h[0], counts=counts, blocksize=8, percdamp=0.01)
    assert torch.equal(~kept[0], pruned)
    assert torch.allclose(new[0], expected, rtol=0, atol=1e-12)
    assert (~kept[0, :, 5]).all()  # every weight of the dead column went first
    assert int((~kept).sum()) == 200


@pytest.mark.parametrize("nm, blocksize", [((2, 4), 8), ((2, 4), 128), ((1, 4), 4), ((3, 8), 16)])
def test_nm_sweep_equals_the_reference_port_and_keeps_n_of_every_m(nm, blocksize):
    h, w = _dead_problem(rows=12, d=32, dead=(5, 17, 18))
    n, m = nm
    new, kept = reconstruct(w, h, nm=nm, damping=0.01, blocksize=blocksize)
    expected, pruned = fasterprune(w[0], h[0], prunen=m - n, prunem=m, blocksize=blocksize, percdamp=0.01)
    assert torch.equal(~kept[0], pruned)
    assert torch.allclose(new[0], expected, rtol=0, atol=1e-12)
    assert (kept.reshape(12, -1, m).sum(-1) == n).all()
    assert (new[~kept] == 0).all()
    assert (~kept[0, :, 5]).all() and (~kept[0, :, 17:19]).all()


def test_the_nm_sweep_chooses_on_the_updated_weights_and_protects_a_bias_column():
    _, h, w, _ = _problem(groups=2, rows=5, d=9)
    new, kept = reconstruct(w, h, nm=(2, 4), damping=0.01, blocksize=4, protected=1)
    assert kept[:, :, -1].all()
    assert (kept[:, :, :8].reshape(2, 5, 2, 4).sum(-1) == 2).all()
    assert torch.allclose(new, _unblocked(w, _damped(h, 0.01), kept), atol=1e-10)
    on_the_unpruned_weights = w[:, :, :8].pow(2) / torch.linalg.cholesky(
        torch.linalg.inv(_damped(h, 0.01)), upper=True).diagonal(dim1=-2, dim2=-1)[:, None, :8].pow(2)
    from pait.prune.nm import nm_mask
    first_choice = nm_mask({"w": on_the_unpruned_weights.reshape(10, 8)}, 2, 4)[0]["w"].reshape(2, 5, 8)
    assert torch.equal(kept[:, :, :4], first_choice[:, :, :4])  # the first group sees no update yet
    assert not torch.equal(kept[:, :, :8], first_choice)  # later groups are chosen after the updates


@pytest.mark.parametrize("scale", [1e-6, 1e6])
@pytest.mark.parametrize("mode", ["count", "nm", "fixed"])
def test_with_dead_inputs_the_outcome_does_not_depend_on_the_scale_of_h(scale, mode):
    h, w = _dead_problem(rows=12, d=16, dead=(5, 6))
    h = h * 0.37  # a live diagonal of mean other than 1
    keep = torch.rand(w.shape, generator=torch.Generator().manual_seed(4)) > 0.5
    args = {"count": {"n_pruned": 96}, "nm": {"nm": (2, 4)}, "fixed": {"keep": keep}}[mode]
    new, kept = reconstruct(w, h, damping=0.01, blocksize=8, **args)
    scaled, kept_scaled = reconstruct(w, h * scale, damping=0.01, blocksize=8, **args)
    assert torch.equal(kept, kept_scaled)
    assert torch.allclose(new, scaled, rtol=1e-9, atol=1e-12)
    if mode != "fixed":
        assert (~kept[0, :, 5:7]).all()


def test_nm_mode_refuses_a_width_that_is_not_a_multiple_of_m():
    _, h, w, _ = _problem(d=10)
    with pytest.raises(ValueError, match="2:4 does not fit 10"):
        reconstruct(w, h, nm=(2, 4))
