"""The damped inverses of pait's curvature matrices, one function per rule, named by what it inverts.

* :func:`kfac_damped_inverse`: a K-FAC factor ``F`` (the ``kfac`` score, one-shot ``obs`` recovery):
  ``(F + delta I)^-1`` with ``delta = damping * mean(diag F)`` (``relative``) or ``damping`` (``absolute``);
  a damping below the factor's round-off is a ConfigError.
* :func:`gram_damped_inverse`: a batch of input Gram matrices ``H`` (sequential OBS, SparseGPT's sweep):
  an input that is always zero (``H_ii = 0``) is first given the mean live diagonal, then
  ``(H + damping * mean(diag H) I)^-1``, so that ``c H`` gives ``H^-1 / c`` for every ``c > 0``.
* :func:`ridge_amount`: not an inverse: the ``lam`` of the structured refit's ridge regression towards
  the weights after the cut, ``damping * mean(diag G)``, solved by the refit itself.
"""

from __future__ import annotations

import typing
from typing import Literal

import torch
from torch import Tensor

from pait.errors import ConfigError

DampingMode = Literal["relative", "absolute"]
DAMPING_MODES = typing.get_args(DampingMode)


def damping_amount(factor: Tensor, damping: float, mode: str = "relative") -> Tensor:
    """The multiple of the identity added to ``factor``: ``damping * mean(diag F)`` when ``mode`` is
    "relative" (independent of the loss scale), ``damping`` itself when "absolute"."""
    if mode not in DAMPING_MODES:
        raise ConfigError(f"kfac: damping_mode {mode!r} is not one of {', '.join(DAMPING_MODES)}")
    if mode == "absolute":
        return torch.tensor(float(damping), dtype=torch.float64, device=factor.device)
    return damping * factor.double().diagonal().mean().clamp_min(torch.finfo(torch.float64).eps)


def kfac_damped_inverse(factor: Tensor, damping: float, mode: str = "relative") -> Tensor:
    """(F + damping_amount(F, damping, mode) * I)^-1 via Cholesky, in float64 (the K-FAC score and OBS
    recovery); a damping too small for the factor's round-off is a ConfigError naming it."""
    f = factor.double()
    delta = damping_amount(f, damping, mode)
    chol, info = torch.linalg.cholesky_ex(f + delta * torch.eye(f.shape[0], dtype=f.dtype, device=f.device))
    if info.item():
        raise ConfigError(f"kfac: damping {damping:g} ({mode}) adds {float(delta):.3g}, too little to make a "
                          f"{f.shape[0]}x{f.shape[0]} factor positive definite (its round-off); use a larger damping")
    return torch.cholesky_inverse(chol)


def gram_damped_inverse(hessian: Tensor, damping: float) -> Tensor:
    """``(H + damping * mean(diag H) * I)^-1`` for a batch (G, d, d), float64; a zero diagonal entry first becomes
    the mean of the nonzero ones of its group (1 if there are none), so ``c H`` gives ``H^-1 / c``."""
    h = hessian.double().clone()
    diag = h.diagonal(dim1=-2, dim2=-1)
    dead = diag == 0
    live = (~dead).sum(-1, keepdim=True)
    fill = torch.where(live > 0, diag.sum(-1, keepdim=True) / live.clamp(min=1), 1.0)
    diag.copy_(torch.where(dead, fill, diag))  # dead inputs: decoupled from the others
    diag += damping * diag.mean(-1, keepdim=True)
    return torch.cholesky_inverse(torch.linalg.cholesky(h))


def ridge_amount(gram: Tensor, damping: float) -> Tensor:
    """The ridge weight ``damping * mean(diag G)`` of the structured refit (float64 ``G``), at least the
    smallest positive float64 so an all-zero Gram matrix still gives a solvable system."""
    return damping * gram.diagonal().mean().clamp_min(torch.finfo(torch.float64).tiny)
