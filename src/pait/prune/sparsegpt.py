r"""One layer's OBS reconstruction with block-lazy updates, as SparseGPT does it.

Written after the reference implementation ``SparseGPT.fasterprune`` in IST-DASLab/sparsegpt
(``sparsegpt.py``; Frantar & Alistarh, ICML 2023), batched here over independent groups (the
groups of a grouped or depthwise conv), in float64, with a fixed mask as well as SparseGPT's
adaptive per-block selection (with exact per-layer counts) and its N:M selection. torch has no such
solver. ``tests/test_sparsegpt.py`` holds a port of ``fasterprune`` it is checked against.

For each group, rows ``W`` (r x d) and the layer-input Gram matrix ``H = X X^T`` (d x d) are given.
Columns are visited left to right. When column ``i`` is reached, every weight there that is pruned
is set to 0 and its error is compensated on the columns ``i+1 ..`` of the same row by the OBS
update with the Hessian restricted to the columns not yet visited, ``F = {i, .., d-1}``::

    W[:, F] -= (W[:, i] / [H_F^-1]_00) [H_F^-1]_{0, :}

Row ``i`` of the upper Cholesky factor ``U`` of ``H^-1`` (``H^-1 = U^T U``) equals
``[H_F^-1]_{0, :} / sqrt([H_F^-1]_00)``, so one Cholesky serves every column; the updates to
columns outside the current block are applied once per block (lazy batch updates). Kept columns
before a pruned one are not revisited: for an arbitrary mask this is SparseGPT's approximation of
the per-row least-squares optimum (which :mod:`pait.prune.obs` computes with one solve per row); it is the
optimum itself when each row's pruned columns all precede its kept ones.

``H`` is damped by ``damping * mean(diag H)`` (SparseGPT's ``percdamp``). A column whose input is
always zero (``diag H = 0``, a dead input) is decoupled from the others: its diagonal is set to the
mean of the live diagonal entries (1 when every input is dead) before damping. The adaptive modes
then set its weights to 0 before choosing, as the reference does (``H[dead, dead] = 1;
W[:, dead] = 0``): they have saliency 0 and are pruned first, at no cost to the layer's outputs
(any left kept stay 0); the fixed mode keeps them as the mask says.

N:M mode (``nm = (n, m)``, n kept of every m consecutive columns of each row, as the reference's
``prunen = m - n``, ``prunem = m``): when the sweep reaches the first column of a group of ``m``,
the ``m - n`` entries of each row with the smallest ``w^2 / [U]_jj^2`` in that group, on the weights
as updated so far, are pruned. The block size is rounded down to a multiple of ``m`` (at least
``m``), so no group straddles two blocks.

Differences from the reference, each on purpose: float64 throughout; exact counts per block
(:func:`block_counts`) where the reference prunes ``int(numel * sparsity) + 1`` entries of a block
(and every tie at the threshold); ties broken by position (stable sort) where ``torch.topk`` leaves
them open; a dead diagonal of ``mean(live diag)`` where the reference puts 1, which makes ``H`` and
``c H`` give the same masks and weights for every ``c > 0`` (with 1, the damping of the live
columns, ``damping * mean(diag H)``, depends on the scale of ``H``); the two agree exactly when
the live diagonal's mean is 1. No quantisation and no loss tracking.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pait.layers.inverses import gram_damped_inverse


def dead_inputs(hessian: Tensor) -> Tensor:
    """(G, d) True where an input is always zero (``diag H = 0``)."""
    return hessian.diagonal(dim1=-2, dim2=-1) == 0


def damped_upper_inverse(hessian: Tensor, damping: float) -> Tensor:
    """Upper Cholesky factor ``U`` of the damped inverse, ``H^-1 = U^T U``
    (:func:`pait.layers.inverses.gram_damped_inverse`)."""
    return torch.linalg.cholesky(gram_damped_inverse(hessian, damping), upper=True)


def block_counts(n_pruned: int, width: int, blocksize: int) -> list[int]:
    """Pruned entries per column block: ``n_pruned`` spread in proportion to block width, summing exactly."""
    ends = list(range(blocksize, width, blocksize)) + [width]
    cumulative = [0] + [round(n_pruned * e / width) for e in ends]
    return [b - a for a, b in zip(cumulative, cumulative[1:])]


@torch.no_grad()
def reconstruct(weight: Tensor, hessian: Tensor, keep: Tensor | None = None, n_pruned: int | None = None,
                damping: float = 0.01, blocksize: int = 128, protected: int = 0,
                nm: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
    """Prune and update ``weight`` (G, r, d) against ``hessian`` (G, d, d); return (new weight, keep), float64.

    Give exactly one of: ``keep`` (G, r, d), True = kept (fixed mode); ``n_pruned`` (adaptive mode: in
    each block of columns, prune the ``n`` entries of smallest ``w^2 / [U]_ii^2`` over all groups and
    rows, the ``n`` spreading ``n_pruned`` over the blocks, :func:`block_counts`); ``nm = (n, m)``
    (N:M mode: keep ``n`` of every ``m`` consecutive prunable columns of each row, chosen per group
    as the sweep reaches it; the prunable width must be a multiple of ``m``). The last ``protected``
    columns (a bias column) are never pruned. Pruned entries are exactly 0 on return.
    """
    if sum(x is not None for x in (keep, n_pruned, nm)) != 1:
        raise ValueError("give exactly one of a fixed mask, a number of weights to prune and an N:M pattern")
    w = weight.double().clone()
    groups, rows, d = w.shape
    prunable = d - protected
    if nm is not None:
        if not 0 < nm[0] < nm[1] or prunable % nm[1]:
            raise ValueError(f"N:M pattern {nm[0]}:{nm[1]} does not fit {prunable} prunable columns")
        blocksize = max(nm[1], blocksize - blocksize % nm[1])
    upper = damped_upper_inverse(hessian, damping).to(w.device)
    if keep is None:
        w[dead_inputs(hessian).to(w.device)[:, None, :].expand_as(w)] = 0.0  # pruned first, at no cost
    pruned = torch.zeros_like(w, dtype=torch.bool) if keep is None else ~keep.to(w.device, torch.bool)
    counts = block_counts(n_pruned, prunable, blocksize) if n_pruned is not None else []
    for b, i1 in enumerate(range(0, d, blocksize)):
        i2 = min(i1 + blocksize, d)
        u1 = upper[:, i1:i2, i1:i2]
        w1 = w[:, :, i1:i2].clone()
        if n_pruned is not None and i1 < prunable:
            width = min(i2, prunable) - i1
            saliency = w1[:, :, :width].pow(2) / u1.diagonal(dim1=-2, dim2=-1)[:, None, :width].pow(2)
            chosen = torch.sort(saliency.reshape(-1), stable=True).indices[:counts[b]]
            block = torch.zeros(groups * rows * width, dtype=torch.bool, device=w.device)
            block[chosen] = True
            pruned[:, :, i1:i1 + width] = block.view(groups, rows, width)
        mask1 = pruned[:, :, i1:i2]
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            if nm is not None and i1 + i < prunable and i % nm[1] == 0:
                _choose_nm(w1, u1, mask1, i, *nm)
            col = w1[:, :, i]
            err = torch.where(mask1[:, :, i], col, 0.0) / u1[:, i, i][:, None]
            w1[:, :, i:] -= err[:, :, None] * u1[:, i, i:][:, None, :]
            err1[:, :, i] = err
        w1[mask1] = 0.0
        w[:, :, i1:i2] = w1
        w[:, :, i2:] -= err1 @ upper[:, i1:i2, i2:]
    w[pruned] = 0.0
    return w, ~pruned


def _choose_nm(w1: Tensor, u1: Tensor, mask1: Tensor, i: int, n: int, m: int) -> None:
    """Mark in ``mask1`` the ``m - n`` entries of smallest saliency of each row in block columns ``i .. i+m-1``."""
    saliency = w1[:, :, i:i + m].pow(2) / u1.diagonal(dim1=-2, dim2=-1)[:, None, i:i + m].pow(2)
    order = torch.sort(saliency, dim=-1, stable=True).indices[..., :m - n]
    mask1[:, :, i:i + m].scatter_(-1, order, True)
