"""First- and second-order gradient scores: SNIP and GraSP."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from pait.heads import mse_to_one_hot
from pait.scores._common import eval_mode, mean_gradient, requiring_grad
from pait.scores.registry import Batches, Params, register_score


@register_score("snip")
def snip(model: nn.Module, batches: Batches, params: Params) -> dict[str, Tensor]:
    """|theta * dL/dtheta| with L the loss averaged over every example of ``batches``."""
    with eval_mode(model), requiring_grad(params):
        grads = mean_gradient(model, batches, params)
    return {k: (p.detach() * g).abs() for (k, p), g in zip(params.items(), grads)}


@register_score("grasp")
def grasp(model: nn.Module, batches: Batches, params: Params) -> dict[str, Tensor]:
    """theta * (H g), with g = dL/dtheta and H = d^2L/dtheta^2 of the loss averaged over all examples.

    Sign convention: GraSP (Wang et al., ICLR 2020) scores ``S(-theta) = -theta * (H g)`` and removes
    the weights with the *largest* S, i.e. those whose removal reduces the gradient norm least (or
    increases it). Our masks keep the *largest* scores, so we return ``theta * (H g) = -S``: the
    ranking is the paper's, with higher meaning keep. No temperature is applied (the loss is MSE).
    H and g are restricted to the scored parameters. H is the exact Hessian, applied by double
    backward; attention runs on the math SDPA backend, since fused kernels have no double backward.
    Two passes over ``batches`` (first g, then H g): a one-shot iterator is not enough.
    """
    tensors = list(params.values())
    with eval_mode(model), requiring_grad(params), sdpa_kernel(SDPBackend.MATH):
        g = [t.detach() for t in mean_gradient(model, batches, params)]
        hg, count = [torch.zeros_like(p) for p in tensors], 0
        for images, labels in batches:
            loss = mse_to_one_hot(model(images), labels)
            grads = torch.autograd.grad(loss, tensors, create_graph=True, allow_unused=True)
            dot = sum((gi * vi).sum() for gi, vi in zip(grads, g) if gi is not None)
            if isinstance(dot, Tensor) and dot.requires_grad:
                for acc, h in zip(hg, torch.autograd.grad(dot, tensors, allow_unused=True)):
                    if h is not None:
                        acc.add_(h, alpha=len(images))
            count += len(images)
    return {k: p.detach() * h / count for (k, p), h in zip(params.items(), hg)}
