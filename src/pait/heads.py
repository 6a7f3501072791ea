"""Closed-form ridge heads: one frozen linear classifier per task, fit on unpruned features."""

from __future__ import annotations

import torch
from torch import Tensor


def one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot targets of shape (N, num_classes)."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).to(dtype)


def fit_ridge(features: Tensor, labels: Tensor, num_classes: int, alpha: float = 1.0) -> Tensor:
    """Solve (Phi^T Phi + alpha I) xi = Phi^T Y for the ridge head xi of shape (D, num_classes).

    Solved through a Cholesky factorisation of the D x D (or, when N < D, the N x N dual) system,
    in the features' dtype; no bias, matching the study's protocol.
    """
    if features.ndim != 2 or labels.ndim != 1 or features.shape[0] != labels.shape[0]:
        raise ValueError(f"features {tuple(features.shape)} and labels {tuple(labels.shape)} do not match")
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    phi = features
    y = one_hot(labels, num_classes, phi.dtype)
    n, d = phi.shape
    if n >= d:
        gram = phi.T @ phi
        gram.diagonal().add_(alpha)
        return torch.cholesky_solve(phi.T @ y, torch.linalg.cholesky(gram))
    # Dual form: xi = Phi^T (Phi Phi^T + alpha I)^-1 Y, identical in exact arithmetic.
    gram = phi @ phi.T
    gram.diagonal().add_(alpha)
    return phi.T @ torch.cholesky_solve(y, torch.linalg.cholesky(gram))
