"""SynFlow (Tanaka et al., NeurIPS 2020): data-free, iterative, sparsity-specific."""

from __future__ import annotations

import copy
import warnings

import torch
from torch import Tensor, nn

from pait.masks import global_mask
from pait.layers.modes import eval_mode
from pait.scores._common import model_names
from pait.scores.registry import Batches, Params, register_score
from pait.typed import Count


@register_score("synflow", per_sparsity=True, revision=1)  # 1: ReLU6 / Hardtanh pass the flow as ReLU
def synflow(model: nn.Module, batches: Batches, params: Params, sparsity: float = 0.0, iterations: Count = 100,
            double: bool = True, input_shape: tuple[Count, ...] | None = None) -> dict[str, Tensor]:
    """Iterative SynFlow scores for one target ``sparsity``: they are specific to it.

    On a copy of the model (so the original's values and signs are untouched) every floating
    parameter and buffer is replaced by its absolute value (float64 when ``double``), the input is
    all ones of one image's shape (``input_shape``, else the first image of ``batches``), and
    ``R = sum(model(ones))``. Each of ``iterations`` rounds scores ``|theta * dR/dtheta|`` on the
    masked copy and masks it globally to density ``(1 - sparsity) ** (round / iterations)``
    (the paper's exponential schedule). The last round's scores are returned:
    ``global_mask(scores, sparsity)`` reproduces SynFlow's final mask exactly (weights pruned in
    earlier rounds score 0). Runs in eval mode. SynFlow assumes ReLU activations, which pass the
    positive signal of the linearised network unchanged: clamping ones (ReLU6 / Hardtanh, as in
    EfficientNet-Lite) saturate on it and zero the flow, and every score would be 0 (31 of
    EfficientNet-Lite0's 49 layers were then pruned whole at 20% sparsity). The copy therefore has
    them replaced by ReLU, as the method intends.
    """
    if input_shape is None:
        images, _ = next(iter(batches))
        input_shape = tuple(images.shape[1:])
    names = model_names(model, params)
    linear = _unclamped(copy.deepcopy(model))
    dtype = torch.float64 if double else next(iter(params.values())).dtype
    with torch.no_grad():
        for t in [*linear.parameters(), *linear.buffers()]:
            if t.is_floating_point():
                t.data = t.data.to(dtype).abs()
    own = dict(linear.named_parameters())
    targets = {k: own[names[k]] for k in params}
    ones = torch.ones((1, *input_shape), dtype=dtype, device=next(iter(params.values())).device)
    scores: dict[str, Tensor] = {}
    with eval_mode(linear):
        for step in range(1, iterations + 1):
            tensors = [t.requires_grad_(True) for t in targets.values()]
            grads = torch.autograd.grad(linear(ones).sum(), tensors, allow_unused=True)
            scores = {k: (t.detach() * g).abs() if g is not None else torch.zeros_like(t.detach())
                      for (k, t), g in zip(targets.items(), grads)}
            with warnings.catch_warnings():  # intermediate masks only; the caller's final mask still warns
                warnings.filterwarnings("ignore", message="global_mask prunes these tensors entirely")
                mask = global_mask(scores, 1.0 - (1.0 - sparsity) ** (step / iterations))
            with torch.no_grad():
                for k, t in targets.items():
                    t.mul_(mask[k].to(t.device))
    return {k: s.to(params[k].dtype) for k, s in scores.items()}


def _unclamped(model: nn.Module) -> nn.Module:
    """``model`` with every ReLU6 / Hardtanh module replaced by ReLU, in place."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.Hardtanh):  # nn.ReLU6 is a Hardtanh
                setattr(module, name, nn.ReLU())
    return model
