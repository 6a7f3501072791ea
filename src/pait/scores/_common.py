"""Helpers shared by the data-driven scores: parameter naming, the mean gradient over batches."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pait.heads import mse_to_one_hot
from pait.scores.registry import Batches, Params


def model_names(model: nn.Module, params: Params) -> dict[str, str]:
    """Map each key of ``params`` to the name of the same tensor (by identity) in ``model``."""
    by_id = {id(p): n for n, p in model.named_parameters()}
    missing = [k for k, p in params.items() if id(p) not in by_id]
    if missing:
        raise KeyError(f"parameters not found in the model: {', '.join(missing)}")
    return {k: by_id[id(p)] for k, p in params.items()}


def mean_gradient(model: nn.Module, batches: Batches, params: Params) -> list[Tensor]:
    """Gradient of the loss averaged over every example of ``batches`` (batches weighted by size)."""
    tensors = list(params.values())
    total, count = [torch.zeros_like(p) for p in tensors], 0
    for images, labels in batches:
        loss = mse_to_one_hot(model(images), labels)
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
        for acc, g in zip(total, grads):
            if g is not None:
                acc.add_(g, alpha=len(images))
        count += len(images)
    if not count:
        raise ValueError("the calibration batches are empty")
    return [acc / count for acc in total]
