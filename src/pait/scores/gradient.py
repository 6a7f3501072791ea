"""First- and second-order gradient scores: SNIP and GraSP."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from pait.errors import ConfigError
from pait.heads import mse_to_one_hot
from pait.layers.modes import eval_mode, requiring_grad
from pait.scores._common import mean_gradient
from pait.scores.registry import Batches, Params, register_score
from pait.typed import Positive


@register_score("snip")
def snip(model: nn.Module, batches: Batches, params: Params) -> dict[str, Tensor]:
    """|theta * dL/dtheta| with L the loss averaged over every example of ``batches``."""
    with eval_mode(model), requiring_grad(params):
        grads = mean_gradient(model, batches, params)
    return {k: (p.detach() * g).abs() for (k, p), g in zip(params.items(), grads)}


@register_score("grasp")
def grasp(model: nn.Module, batches: Batches, params: Params, temperature: Positive = 1.0) -> dict[str, Tensor]:
    """theta * (H g), with g = dL/dtheta and H = d^2L/dtheta^2 of the loss averaged over all examples,
    the loss taken on the outputs divided by ``temperature`` (a finite float > 0).

    Sign convention: GraSP (Wang et al., ICLR 2020) scores ``S(-theta) = -theta * (H g)`` and removes
    the weights with the *largest* S, i.e. those whose removal reduces the gradient norm least (or
    increases it). Our masks keep the *largest* scores, so we return ``theta * (H g) = -S``: the
    ranking is the paper's, with higher meaning keep. H and g are restricted to the scored parameters.
    H is the exact Hessian, applied by double backward; attention runs on the math SDPA backend, since
    fused kernels have no double backward. Two passes over ``batches`` (first g, then H g): a one-shot
    iterator is not enough.

    Temperature: the authors' code (alecwangcq/GraSP, ``T=200``; ganguli-lab/Synaptic-Flow ``GraSP``,
    ``temp=200``) divides the logits by T before its cross-entropy. Here the loss is MSE to the one-hot
    label through the frozen ridge head, ``L = mean_k (f_k / T - y_k)^2``, so that
    ``g = 2/(K T) J^T r`` and ``H = 2/(K T^2) J^T J + 2/(K T) sum_k r_k d^2 f_k`` with the residual
    ``r = f / T - y``. A large T drives the residual to the constant ``-y`` (under cross-entropy, to
    ``1/K - y``): in both losses it replaces the fitted residual by one that ignores the outputs. Under
    cross-entropy this keeps the softmax from saturating on large logits; MSE's curvature in the outputs
    is ``2/K`` at every scale, and the ridge head puts the outputs on the targets' scale already, so there
    is nothing to unsaturate. The default T = 1 therefore scores the study's own loss (the one ``snip``,
    ``fisher_diag`` and ``kfac`` use) and leaves earlier scores and cache keys as they were; T = 200 gives
    the reference's setting (its ranking differs: T is not a positive rescaling of the score).

    Against Synaptic-Flow's ``GraSP.score`` (ported in tests/scores/test_grasp_reference.py and equal up
    to a positive scale, given the same loss): the reference sums the per-batch mean-loss gradients
    (batches weighted equally), pait averages over examples (batches weighted by size; the same for equal
    batches); the reference divides the scores by ``|sum| + 1e-10``, pait does not (a positive scale).
    Against alecwangcq/GraSP also: its model stays in the mode it is given (train in its scripts: batch
    statistics), pait scores in eval mode (running statistics, as every pait score); it re-initialises
    the classifier (xavier), pait keeps the frozen ridge head; its calibration set is balanced per class
    and split in two halves, pait takes the calibration batches it is given.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"grasp: temperature must be a finite number > 0, got {temperature!r}")
    tempered = _Tempered(model, float(temperature))
    tensors = list(params.values())
    with eval_mode(model), requiring_grad(params), sdpa_kernel(SDPBackend.MATH):
        g = [t.detach() for t in mean_gradient(tempered, batches, params)]
        hg, count = [torch.zeros_like(p) for p in tensors], 0
        for images, labels in batches:
            loss = mse_to_one_hot(tempered(images), labels)
            grads = torch.autograd.grad(loss, tensors, create_graph=True, allow_unused=True)
            dot = sum((gi * vi).sum() for gi, vi in zip(grads, g) if gi is not None)
            if isinstance(dot, Tensor) and dot.requires_grad:
                for acc, h in zip(hg, torch.autograd.grad(dot, tensors, allow_unused=True)):
                    if h is not None:
                        acc.add_(h, alpha=len(images))
            count += len(images)
    return {k: p.detach() * h / count for (k, p), h in zip(params.items(), hg)}


class _Tempered(nn.Module):
    """``model``'s outputs divided by ``temperature`` (exact at 1: x / 1.0 is x)."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images) / self.temperature
