"""``sequential`` recovery after structured pruning: refit each layer that lost input channels.

The structured counterpart of :mod:`pait.prune.sequential` (OBC / SparseGPT's layer-wise reconstruction):
in forward order, every conv or linear layer whose *inputs* were cut (the consumers of removed channels,
heads or neurons) gets the weights that best reproduce its dense outputs from the inputs the already
refit pruned network now gives it, on the calibration images, without labels:

    W' = argmin ||W X_dense - W' X_pruned||^2 + lam ||W' - W_0||^2 = (W X_dense X_pruned^T + lam W_0) (X_pruned X_pruned^T + lam I)^-1

with ``W_0`` the layer's weights after the cut (the dense ones at the kept indices), a bias fitted alongside
when the layer has one, and ``lam = damping x`` the mean diagonal of the Gram matrix (relative, as in
:mod:`pait.prune.sequential`). Written by hand: Torch-Pruning performs the surgery but has no
reconstruction step. Depthwise (grouped) convs only lose whole filters and are left as cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pait.prune.structured.groups import UnsupportedLayerError

FeatureFn = Callable[[nn.Module, Tensor], Tensor]


def consumers(pruned: nn.Module, structure: Mapping[str, Any]) -> list[str]:
    """Names of the layers of ``pruned`` that lost input channels and can be refit, in forward order."""
    cut = {name for name, sides in structure["modules"].items() if "in" in sides}
    found = []
    for name, module in pruned.named_modules():
        if name not in cut or not isinstance(module, nn.Conv2d | nn.Linear):
            continue
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            continue  # depthwise: each output reads one input channel, nothing to redistribute
        if type(module) not in (nn.Conv2d, nn.Linear) or isinstance(getattr(module, "padding", 0), str):
            raise UnsupportedLayerError(f"sequential recovery cannot refit layer {name!r} ({type(module).__name__}): "
                                        "only plain Conv2d and Linear layers")
        found.append(name)
    return found


def _rows(module: nn.Module, x: Tensor) -> Tensor:
    """The layer's inputs as rows of its weight's columns: conv patches (unfolded) or tokens."""
    if isinstance(module, nn.Conv2d):
        patches = F.unfold(x, module.kernel_size, module.dilation, module.padding, module.stride)
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return x.reshape(-1, x.shape[-1])


def _inputs(model: nn.Module, name: str, images: Tensor, feature_fn: FeatureFn) -> Tensor:
    """Rows of the inputs of ``model``'s layer ``name`` for a batch of images (one forward)."""
    module = model.get_submodule(name)
    seen: list[Tensor] = []
    handle = module.register_forward_hook(lambda _m, args, _out: seen.append(_rows(module, args[0].detach())))
    try:
        feature_fn(model, images)
    finally:
        handle.remove()
    if len(seen) != 1:
        raise UnsupportedLayerError(f"sequential recovery needs layer {name!r} applied once per forward, not {len(seen)}")
    return seen[0]


@torch.no_grad()
def refit_layer(weight: Tensor, bias: Tensor | None, dense_weight: Tensor, dense_bias: Tensor | None,
                dense_rows: Iterable[Tensor], pruned_rows: Iterable[Tensor], damping: float) -> tuple[Tensor, Tensor | None]:
    """The damped least-squares refit of one layer (see the module docstring), in float64.

    ``weight`` (out, k) and ``dense_weight`` (out, d) are flattened to columns; ``dense_rows[i]`` (n_i, d) and
    ``pruned_rows[i]`` (n_i, k) are the layer's dense and pruned inputs for the same images.
    """
    w0 = weight.double().flatten(1)
    wd = dense_weight.double().flatten(1)
    k = w0.shape[1] + (bias is not None)
    gram = torch.zeros(k, k, dtype=torch.float64, device=w0.device)
    cross = torch.zeros(w0.shape[0], k, dtype=torch.float64, device=w0.device)
    for xd, xp in zip(dense_rows, pruned_rows):
        xd, xp = xd.double(), xp.double()
        target = xd @ wd.T + (dense_bias.double() if dense_bias is not None else 0.0)
        if bias is not None:
            xp = torch.cat([xp, xp.new_ones(len(xp), 1)], 1)
        gram += xp.T @ xp
        cross += target.T @ xp
    start = torch.cat([w0, bias.double()[:, None]], 1) if bias is not None else w0
    lam = damping * gram.diagonal().mean().clamp_min(torch.finfo(torch.float64).tiny)
    solved = torch.linalg.solve(gram + lam * torch.eye(k, dtype=torch.float64, device=w0.device),
                                (cross + lam * start).T).T
    new_weight = solved[:, : w0.shape[1]].reshape(weight.shape).to(weight.dtype)
    return new_weight, (solved[:, -1].to(bias.dtype) if bias is not None else None)


@torch.no_grad()
def refit_consumers(dense: nn.Module, pruned: nn.Module, structure: Mapping[str, Any],
                    batches: Sequence[tuple[Tensor, Any]], feature_fn: FeatureFn, damping: float = 1e-2,
                    on_layer: Callable[[str], None] = lambda _: None) -> list[str]:
    """Refit, in place and in forward order, every layer of ``pruned`` that lost input channels (see the
    module docstring); ``dense`` is the encoder before the cut. Returns the refit layers' names."""
    names = consumers(pruned, structure)
    kept_out = {name: sides.get("out") for name, sides in structure["modules"].items()}
    for name in names:
        layer, original = pruned.get_submodule(name), dense.get_submodule(name)
        rows = kept_out[name]
        dense_weight = original.weight if rows is None else original.weight[rows]
        dense_bias = None if original.bias is None else (original.bias if rows is None else original.bias[rows])
        dense_rows = (_inputs(dense, name, images, feature_fn) for images, _ in batches)  # one batch at a time
        pruned_rows = (_inputs(pruned, name, images, feature_fn) for images, _ in batches)
        weight, bias = refit_layer(layer.weight, layer.bias, dense_weight, dense_bias, dense_rows, pruned_rows, damping)
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
        on_layer(name)
    return names
