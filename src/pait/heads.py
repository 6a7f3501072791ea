"""Closed-form ridge heads: one frozen linear classifier per task, fit on unpruned features; the
encoder-plus-head model that scores and re-training differentiate; accuracy and loss through a head."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pait.encoders.base import FeatureFn
from pait.errors import ConfigError
from pait.tasks.base import TaskData


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
        raise ConfigError(f"ridge alpha must be > 0, got {alpha}")
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


class HeadedModel(nn.Module):
    """images -> feature_fn(backbone, images) @ head. The head is a buffer: never trained or pruned.

    Parameter names carry the prefix ``backbone.``; scores and masks are keyed by the backbone's own
    names (``Encoder.prunable_parameters()``), which scores return unchanged.
    """

    def __init__(self, backbone: nn.Module, feature_fn: FeatureFn, head: Tensor) -> None:
        super().__init__()
        self.backbone = backbone
        self.feature_fn = feature_fn
        self.register_buffer("head", head.detach().clone())

    def forward(self, images: Tensor) -> Tensor:
        return self.feature_fn(self.backbone, images) @ self.head.to(images.dtype)


def mse_to_one_hot(outputs: Tensor, labels: Tensor) -> Tensor:
    """The study's loss, ``nn.MSELoss()`` to the one-hot label: the mean over examples and classes.

    The loss of a batch is the mean of its examples' losses, so per-example gradients average to it.
    """
    return torch.nn.functional.mse_loss(outputs, one_hot(labels, outputs.shape[-1], outputs.dtype))


Normalize = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class SplitBatches:
    """Re-iterable (normalised images, labels) batches of a split, each moved to ``device`` when reached:
    the ``batches`` of scores and of K-FAC factors (some scores pass over them twice)."""

    data: TaskData
    normalize: Normalize
    batch_size: int
    device: torch.device

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self.data), self.batch_size):
            pixels = self.data.pixels[start : start + self.batch_size].to(self.device)
            yield self.normalize(pixels), self.data.labels[start : start + self.batch_size].to(self.device)


@torch.no_grad()
def extract_features(
    features: Callable[[Tensor], Tensor], data: TaskData, normalize: Normalize, batch_size: int, device: torch.device
) -> Tensor:
    """Features (N, D) of a split, in float32 on the CPU, computed in batches on ``device``."""
    out = []
    for start in range(0, len(data), batch_size):
        images = normalize(data.pixels[start : start + batch_size].to(device, non_blocking=True))
        out.append(features(images).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def evaluate_head(features: Tensor, labels: Tensor, head: Tensor) -> tuple[float, float]:
    """(accuracy, MSE-to-one-hot loss) of ``features @ head``, computed on the head's device."""
    outputs = features.to(head.device, head.dtype) @ head
    labels = labels.to(head.device)
    accuracy = (outputs.argmax(1) == labels).double().mean().item()
    return accuracy, mse_to_one_hot(outputs, labels).item()
