"""Empirical Fisher diagonal from exact per-example gradients (torch.func vmap over grad)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from pait.scores._common import eval_mode, model_names
from pait.scores.registry import Batches, Params, register_score


@register_score("fisher_diag")
def fisher_diag(model: nn.Module, batches: Batches, params: Params, chunk_size: int = 16) -> dict[str, Tensor]:
    """theta^2 * E_(x,y)[(dL(x,y)/dtheta)^2], the mean over all examples of squared per-example gradients.

    Per-example gradients come from ``vmap(grad(loss of one example))`` through ``functional_call``
    (BatchNorm in eval mode uses its running statistics, so examples stay independent). Each batch
    is split into chunks of ``chunk_size`` examples: peak memory is about ``chunk_size`` copies of the
    scored parameters. One pass over ``batches``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    names = model_names(model, params)

    def example_loss(theta: dict[str, Tensor], image: Tensor, label: Tensor) -> Tensor:
        # ``mse_to_one_hot`` with the one-hot built by scatter: F.one_hot validates its input on data,
        # which vmap cannot trace
        out = functional_call(model, theta, (image.unsqueeze(0),))
        return F.mse_loss(out, torch.zeros_like(out).scatter(-1, label.reshape(1, 1), 1.0))

    per_example_grads = vmap(grad(example_loss), in_dims=(None, 0, 0))
    theta = {names[k]: p.detach() for k, p in params.items()}
    squares = {n: torch.zeros_like(t) for n, t in theta.items()}
    count = 0
    with eval_mode(model), torch.no_grad():  # torch.func.grad still differentiates theta
        for images, labels in batches:
            for x, y in zip(images.split(chunk_size), labels.split(chunk_size)):
                for n, g in per_example_grads(theta, x, y).items():
                    squares[n].add_(g.pow(2).sum(0))
            count += len(images)
    if not count:
        raise ValueError("the calibration batches are empty")
    return {k: p.detach().pow(2) * squares[names[k]] / count for k, p in params.items()}
