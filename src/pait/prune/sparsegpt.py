r"""One layer's OBS reconstruction with block-lazy updates, as SparseGPT does it.

Written after the reference implementation ``SparseGPT.fasterprune`` in IST-DASLab/sparsegpt
(``sparsegpt.py``; Frantar & Alistarh, ICML 2023), batched here over independent groups (the
groups of a grouped or depthwise conv), in float64, with a fixed mask as well as SparseGPT's
adaptive per-block selection, and with exact per-layer counts. torch has no such solver.

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

``H`` is damped by ``damping * mean(diag H)`` (SparseGPT's ``percdamp``); columns whose input is
always zero (``diag H = 0``) get a unit diagonal, so they are neither used nor updated.
"""

from __future__ import annotations

import torch
from torch import Tensor


def damped_inverse(hessian: Tensor, damping: float) -> Tensor:
    """``(H + damping * mean(diag H) * I)^-1`` for a batch (G, d, d), float64; a zero diagonal entry becomes 1 first."""
    h = hessian.double().clone()
    diag = h.diagonal(dim1=-2, dim2=-1)
    diag[diag == 0] = 1.0  # dead inputs: decoupled from the others
    diag += damping * diag.mean(-1, keepdim=True)
    return torch.cholesky_inverse(torch.linalg.cholesky(h))


def damped_upper_inverse(hessian: Tensor, damping: float) -> Tensor:
    """Upper Cholesky factor ``U`` of the damped inverse (:func:`damped_inverse`), ``H^-1 = U^T U``."""
    return torch.linalg.cholesky(damped_inverse(hessian, damping), upper=True)


def block_counts(n_pruned: int, width: int, blocksize: int) -> list[int]:
    """Pruned entries per column block: ``n_pruned`` spread in proportion to block width, summing exactly."""
    ends = list(range(blocksize, width, blocksize)) + [width]
    cumulative = [0] + [round(n_pruned * e / width) for e in ends]
    return [b - a for a, b in zip(cumulative, cumulative[1:])]


@torch.no_grad()
def reconstruct(weight: Tensor, hessian: Tensor, keep: Tensor | None = None, n_pruned: int | None = None,
                damping: float = 0.01, blocksize: int = 128, protected: int = 0) -> tuple[Tensor, Tensor]:
    """Prune and update ``weight`` (G, r, d) against ``hessian`` (G, d, d); return (new weight, keep), float64.

    Fixed mode: ``keep`` (G, r, d), True = kept. Adaptive mode (``keep`` None): in each block of
    columns, prune the ``n`` entries of smallest ``w^2 / [U]_ii^2`` over all groups and rows, the
    ``n`` spreading ``n_pruned`` over the blocks (:func:`block_counts`). The last ``protected``
    columns (a bias column) are never pruned. Pruned entries are exactly 0 on return.
    """
    if (keep is None) == (n_pruned is None):
        raise ValueError("give exactly one of a fixed mask and a number of weights to prune")
    w = weight.double().clone()
    groups, rows, d = w.shape
    upper = damped_upper_inverse(hessian, damping).to(w.device)
    pruned = torch.zeros_like(w, dtype=torch.bool) if keep is None else ~keep.to(w.device, torch.bool)
    prunable = d - protected
    counts = block_counts(n_pruned, prunable, blocksize) if keep is None else []
    for b, i1 in enumerate(range(0, d, blocksize)):
        i2 = min(i1 + blocksize, d)
        u1 = upper[:, i1:i2, i1:i2]
        w1 = w[:, :, i1:i2].clone()
        if keep is None and i1 < prunable:
            width = min(i2, prunable) - i1
            saliency = w1[:, :, :width].pow(2) / u1.diagonal(dim1=-2, dim2=-1)[:, None, :width].pow(2)
            chosen = torch.topk(saliency.reshape(-1), counts[b], largest=False).indices
            block = torch.zeros(groups * rows * width, dtype=torch.bool, device=w.device)
            block[chosen] = True
            pruned[:, :, i1:i1 + width] = block.view(groups, rows, width)
        mask1 = pruned[:, :, i1:i2]
        err1 = torch.zeros_like(w1)
        for i in range(i2 - i1):
            col = w1[:, :, i]
            err = torch.where(mask1[:, :, i], col, 0.0) / u1[:, i, i][:, None]
            w1[:, :, i:] -= err[:, :, None] * u1[:, i, i:][:, None, :]
            err1[:, :, i] = err
        w1[mask1] = 0.0
        w[:, :, i1:i2] = w1
        w[:, :, i2:] -= err1 @ upper[:, i1:i2, i2:]
    w[pruned] = 0.0
    return w, ~pruned
