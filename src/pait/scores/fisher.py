"""Empirical Fisher diagonal from exact per-example gradients.

Two ways to the same per-example gradients:

* *layerwise* (Linear, Conv2d incl. grouped/depthwise, attention projections): the gradient of
  example ``n``'s loss w.r.t. a layer's weight is ``sum_t g_nt a_nt^T``, ``g_nt`` the gradient of
  its loss w.r.t. the layer's output at position/token ``t`` and ``a_nt`` the layer's (unfolded)
  input there (Goodfellow 2015; what Opacus and BackPACK compute). One forward and one backward of
  the chunk give every ``g``; the inputs come from the same taps as ``kfac`` (:mod:`pait.layers.taps`).
  Written by hand (it is what Opacus and BackPACK do internally) to reuse the taps ``kfac`` already
  has, including timm's ``Conv2dSame`` and ``nn.MultiheadAttention`` projections, without a new
  dependency.
* *vmap*: ``vmap(grad(loss of one example))`` through ``functional_call`` over the whole model, for
  every other parameter (norms, biases, Conv1d, ...) and for any layer call the layerwise way
  cannot vouch for (its output changed in place later, or no unique input dimension of the
  chunk's size to be the example dimension). Somewhat slower on EfficientNet-Lite0 (BENCHMARKS.md,
  score cost) and it holds every scored parameter's per-example gradients of a chunk at once, where
  the layerwise way holds one layer's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from pait.heads import mse_to_one_hot
from pait.layers.conv import conv_padding
from pait.layers.modes import eval_mode, requiring_grad
from pait.layers.taps import Owners, layer_owners, tapping_layers
from pait.scores._common import model_names
from pait.scores.registry import Batches, Params, register_score
from pait.typed import Count


@register_score("fisher_diag")
def fisher_diag(model: nn.Module, batches: Batches, params: Params, chunk_size: Count = 16,
                layerwise: bool = True) -> dict[str, Tensor]:
    """theta^2 * E_(x,y)[(dL(x,y)/dtheta)^2], the mean over all examples of squared per-example gradients.

    BatchNorm runs in eval mode (running statistics), so examples stay independent. Each batch is
    split into chunks of ``chunk_size`` examples: peak extra memory is about ``chunk_size`` copies
    of the largest scored weight, on top of one chunk's forward+backward. One pass over
    ``batches``. ``layerwise=False`` sends every parameter through the vmap path (see the module
    docstring); both give the same numbers.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    names = model_names(model, params)
    owners = layer_owners(model, params) if layerwise else {}
    squares = {k: torch.zeros_like(p.detach()) for k, p in params.items()}
    count = 0
    with eval_mode(model), requiring_grad(params):
        for images, labels in batches:
            for x, y in zip(images.split(chunk_size), labels.split(chunk_size)):
                fallback = [k for k in params if k not in owners]
                if owners:
                    fallback += _add_layerwise_squares(model, owners, x, y, squares)
                if fallback:
                    grads = _vmap_per_example_grads(model, {names[k]: params[k].detach() for k in fallback}, x, y)
                    for k in fallback:
                        squares[k].add_(grads[names[k]].pow(2).sum(0))
            count += len(images)
    if not count:
        raise ValueError("the calibration batches are empty")
    return {k: p.detach().pow(2) * squares[k] / count for k, p in params.items()}


def _add_layerwise_squares(model: nn.Module, owners: Owners, x: Tensor, y: Tensor, squares: dict[str, Tensor]) -> list[str]:
    """Add sum_n (per-example gradient)^2 of the chunk to ``squares`` for each owned key; return
    the keys left to the vmap path for this chunk."""
    calls: list[tuple[str, nn.Module, str, Tensor, Tensor, int]] = []
    with tapping_layers(owners, lambda key, mod, role, a, s: calls.append((key, mod, role, a.detach(), s, s._version))):
        loss = mse_to_one_hot(model(x), y) * len(x)  # the sum of per-example losses
    grads = torch.autograd.grad(loss, [c[4] for c in calls], allow_unused=True)
    per_example: dict[str, Tensor] = {}
    fallback: set[str] = set()
    for (key, mod, role, a, s, version), g in zip(calls, grads):
        if s._version != version:  # modified in place after the layer: g is not d loss / d output
            fallback.add(key)
            continue
        if g is None:  # the output does not reach the loss
            continue
        pe = _conv_grads(mod, a, g, len(x)) if role == "conv" else _linear_grads(a, g, len(x))
        if pe is None:
            fallback.add(key)
        else:  # a layer called several times: its per-example gradient is the sum over calls
            per_example[key] = per_example[key] + pe if key in per_example else pe
    for key, pe in per_example.items():
        if key not in fallback:
            squares[key].add_(pe.square_().sum(0))
    return [k for k in owners if k in fallback]


def _linear_grads(a: Tensor, g: Tensor, n: int) -> Tensor | None:
    """(n, out, in) per-example gradients of a linear map ``a (..., in) -> g (..., out)``, summed over
    tokens; the example dimension is the one input dimension of size ``n`` (None if not unique)."""
    dims = [d for d in range(a.dim() - 1) if a.shape[d] == n]
    if len(dims) != 1:
        return None
    a = a.movedim(dims[0], 0).reshape(n, -1, a.shape[-1])
    g = g.movedim(dims[0], 0).reshape(n, -1, g.shape[-1])
    return torch.einsum("nto,nti->noi", g, a)


def _conv_grads(conv: nn.Conv2d, a: Tensor, g: Tensor, n: int) -> Tensor | None:
    """(n, *conv.weight.shape) per-example gradients of a Conv2d, summed over positions.

    1x1 kernels without padding: ``g`` times the (strided) input, one batched matmul per group. Other
    kernels: the conv's weight gradient with the examples as extra groups (the input seen as one
    image of ``n * in`` channels, ``n * groups`` groups), which avoids materialising the unfolded
    input; it is the same computation as ``sum_t g_nt a_nt^T`` over ``F.unfold`` patches.
    """
    if a.shape[0] != n:
        return None
    a, padding = conv_padding(conv, a)
    weight = conv.weight
    if weight.shape[-2:] == (1, 1) and padding in (0, (0, 0)):
        patches = a[:, :, :: conv.stride[0], :: conv.stride[1]].flatten(2).unflatten(1, (conv.groups, -1))
        g = g.flatten(2).unflatten(1, (conv.groups, -1))  # (n, groups, out/groups, positions)
        return torch.einsum("ngol,ngil->ngoi", g, patches).reshape(n, *weight.shape)
    padding = padding if isinstance(padding, tuple) else (padding, padding)
    stacked = weight.detach().expand(n, *weight.shape).reshape(n * weight.shape[0], *weight.shape[1:])
    _, grads, _ = torch.ops.aten.convolution_backward(
        g.reshape(1, -1, *g.shape[2:]), a.reshape(1, -1, *a.shape[2:]), stacked, None, list(conv.stride),
        list(padding), list(conv.dilation), False, [0, 0], n * conv.groups, [False, True, False])
    return grads.reshape(n, *weight.shape)


def _vmap_per_example_grads(model: nn.Module, theta: dict[str, Tensor], x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """{name: (n, *shape)} per-example gradients of the parameters ``theta`` (model names), by
    ``vmap(grad)`` through ``functional_call`` (the other parameters stay the model's own)."""

    def example_loss(theta: dict[str, Tensor], image: Tensor, label: Tensor) -> Tensor:
        # ``mse_to_one_hot`` with the one-hot built by scatter: F.one_hot validates its input on data,
        # which vmap cannot trace
        out = functional_call(model, theta, (image.unsqueeze(0),))
        return F.mse_loss(out, torch.zeros_like(out).scatter(-1, label.reshape(1, 1), 1.0))

    with torch.no_grad():  # torch.func.grad still differentiates theta
        return vmap(grad(example_loss), in_dims=(None, 0, 0))(theta, x, y)
