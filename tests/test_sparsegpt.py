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
