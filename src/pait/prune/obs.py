r"""One-shot OBS recovery with the K-FAC block inverse: prune and update the kept weights, no SGD.

For a layer with weight ``W`` (out x d; a conv weight viewed as ``(out, in/groups*kh*kw)``, the
column order of ``F.unfold`` and of :func:`pait.scores.kfac.kfac_factors`) the K-FAC curvature is
``H ~ A (x) B`` (``A`` over the layer inputs, ``B`` over its outputs; see ``kfac_factors``). When
the layer has a bias, ``A`` carries a trailing ones column and the bias is the last column of
``[W | b]``: it is never pruned, but it is updated with the row it belongs to.

For each output row ``k`` with pruned set ``P_k`` the update is the OBS closed form (Eq. 3 of the
study, as in OBC / SparseGPT) with the input-side factor only::

    delta W[k, :] = - W[k, P] ([A^-1]_{PP})^-1 [A^-1]_{P, :},   then W[k, P] = 0 exactly.

With ``H = A (x) B`` the joint optimum over all rows for an arbitrary pruned set does not decouple
unless ``B`` is diagonal; with a diagonal ``B`` the Hessian is block-diagonal over rows with blocks
``B_kk A``, the scalar ``B_kk`` cancels, and the per-row form is exact. Otherwise it is the
OBC / SparseGPT approximation (equivalently: the update that best preserves the layer's outputs on
the calibration inputs, ``min ||(W' - W) a||^2`` subject to the mask).

``A`` is damped as in the ``kfac`` score: ``A + damping * mean(diag A) * I``, inverted in float64.
Rows are grouped by their number of pruned entries and solved with batched linear algebra.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from pait.layers.inverses import kfac_damped_inverse

MAX_ELEMENTS = 2**25  # float64 entries of the gathered [A^-1]_{P,:} blocks held at once


def obs_rows(weight: Tensor, keep: Tensor, a_inv: Tensor, max_elements: int = MAX_ELEMENTS) -> Tensor:
    """OBS-updated copy (float64) of ``weight`` (rows, d) with the entries where ``keep`` is False zeroed.

    ``a_inv`` (d, d) is the inverse input-side curvature shared by all rows, or (G, d, d): one for
    each of G equal consecutive blocks of rows (the groups of a grouped conv).
    """
    w = weight.double()
    d = w.shape[1]
    inv = a_inv if a_inv.dim() == 3 else a_inv[None]
    group = torch.arange(w.shape[0], device=w.device) // (w.shape[0] // inv.shape[0])
    pruned = ~keep.to(device=w.device, dtype=torch.bool)
    counts = pruned.sum(1)
    out = w.clone()
    for c in counts.unique().tolist():
        if c == 0:
            continue
        rows = torch.nonzero(counts == c).squeeze(1)
        for chunk in rows.split(max(1, max_elements // (c * d))):
            idx = torch.nonzero(pruned[chunk])[:, 1].view(len(chunk), c)  # row-major: sorted per row
            inv_p = inv[group[chunk, None], idx]  # (r, c, d): rows P of the row's A^-1
            inv_pp = torch.gather(inv_p, 2, idx[:, None, :].expand(-1, c, -1))  # (r, c, c)
            w_p = torch.gather(w[chunk], 1, idx).unsqueeze(-1)
            sol = torch.cholesky_solve(w_p, torch.linalg.cholesky(inv_pp))
            out[chunk] = w[chunk] - (inv_p.transpose(1, 2) @ sol).squeeze(-1)
    out[pruned] = 0.0
    return out


def bias_name(weight_name: str) -> str:
    """The bias that shares a row with a weight: ``x.weight -> x.bias``, ``in_proj_weight -> in_proj_bias``."""
    head, _, last = weight_name.rpartition(".")
    prefix = f"{head}." if head else ""
    return prefix + last.removesuffix("weight") + "bias"


@torch.no_grad()
def obs_prune(
    params: Mapping[str, nn.Parameter],
    factors: Mapping[str, tuple[Tensor, Tensor]],
    mask: Mapping[str, Tensor],
    damping: float = 1e-3,
) -> None:
    """Prune every masked weight in place with the per-row OBS update (biases updated too).

    ``params`` holds the model's named parameters (biases included), ``factors`` the
    ``kfac_factors(..., include_bias=True)`` of the *unpruned* model, ``mask`` True = kept.
    """
    for name, keep in mask.items():
        p = params[name]
        a, _ = factors[name]
        w = p.detach().reshape(p.shape[0], -1)
        keep2d = keep.reshape(w.shape).to(p.device)
        bias = params.get(bias_name(name))
        has_bias = a.shape[0] == w.shape[1] + 1
        if has_bias != (bias is not None) or a.shape[0] not in (w.shape[1], w.shape[1] + 1):
            raise ValueError(f"obs: factor A of {name} is {tuple(a.shape)}, weight rows have {w.shape[1]} entries")
        if has_bias:
            w = torch.cat([w, bias.detach().reshape(-1, 1)], 1)
            keep2d = torch.cat([keep2d, keep2d.new_ones(w.shape[0], 1)], 1)
        new = obs_rows(w, keep2d, kfac_damped_inverse(a.to(p.device), damping)).to(p.dtype)
        if has_bias:
            bias.copy_(new[:, -1])
            new = new[:, :-1]
        p.copy_(new.reshape(p.shape))
