"""``sequential`` recovery after structured pruning: refit each layer that lost input channels.

The structured counterpart of :mod:`pait.prune.sequential` (OBC / SparseGPT's layer-wise reconstruction):
in forward order, every conv or linear layer whose *inputs* were cut (the consumers of removed channels,
heads or neurons) gets the weights that best reproduce its dense outputs from the inputs the already
refit pruned network now gives it, on the calibration images, without labels:

    W' = argmin ||W X_dense - W' X_pruned||^2 + lam ||W' - W_0||^2 = (W X_dense X_pruned^T + lam W_0) (X_pruned X_pruned^T + lam I)^-1

with ``W_0`` the layer's weights after the cut (the dense ones at the kept indices), a bias fitted alongside
when the layer has one, and ``lam = damping x`` the mean diagonal of the Gram matrix (relative, as in
:mod:`pait.prune.sequential`). Written by hand: Torch-Pruning performs the surgery but has no
reconstruction step. Depthwise convs only lose whole filters (their outputs) and are left as cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pait.errors import UnsupportedLayerError
from pait.layers.conv import patch_rows
from pait.layers.inverses import ridge_amount
from pait.layers.modes import eval_mode
from pait.layers.taps import tapping_layers

FeatureFn = Callable[[nn.Module, Tensor], Tensor]
CHUNK_ELEMENTS = 1 << 24  # rows x columns per float64 block of the Gram accumulation (128 MiB)


def consumers(pruned: nn.Module, structure: Mapping[str, Any], images: Tensor, feature_fn: FeatureFn) -> list[str]:
    """Names of the layers of ``pruned`` that lost input channels, in the order one forward of ``images``
    applies them; each must be a Conv2d (groups 1) or Linear applied exactly once per forward."""
    cut = {name for name, sides in structure["modules"].items() if "in" in sides}
    layers = {name: m for name, m in pruned.named_modules() if name in cut and isinstance(m, nn.Conv2d | nn.Linear)}
    for name, module in layers.items():
        if isinstance(module, nn.Conv2d) and (module.groups > 1 or module.padding_mode != "zeros"):
            # depthwise convs are recorded as losing outputs only (pait.prune.structured.groups)
            raise UnsupportedLayerError(f"sequential recovery cannot refit layer {name!r}: a grouped or "
                                        f"{module.padding_mode!r}-padded conv lost input channels")
    order: list[str] = []
    owners = {n: (m, _role(m)) for n, m in layers.items()}
    with eval_mode(pruned), tapping_layers(owners, lambda key, *_: order.append(key)):
        feature_fn(pruned, images)
    wrong = sorted(n for n in layers if order.count(n) != 1)
    if wrong:
        raise UnsupportedLayerError("sequential recovery needs each refit layer applied once per forward: "
                                    + ", ".join(f"{n} ({order.count(n)}x)" for n in wrong))
    return order


def _role(module: nn.Module) -> str:
    """The role of a refit layer in :func:`pait.layers.taps.tapping_layers`."""
    return "conv" if isinstance(module, nn.Conv2d) else "linear"


class _Captured(Exception):
    """Raised by the tap once the layer's rows are taken: the rest of the forward is not needed."""


def _layer_rows(model: nn.Module, name: str, images: Tensor, feature_fn: FeatureFn) -> tuple[Tensor, Tensor]:
    """The forward of ``images`` up to layer ``name`` (then stopped): the rows of its inputs (as its weight's
    columns) and of its outputs (one row per position or token, one column per output channel)."""
    module = model.get_submodule(name)
    seen: list[tuple[Tensor, Tensor]] = []

    def on_layer(_key: str, _module: nn.Module, role: str, x: Tensor, out: Tensor) -> None:
        # the inputs as rows of the weight's columns: conv patches (the conv's own padding, timm's run-time
        # 'same' included) or tokens
        rows = patch_rows(module, x.detach()) if role == "conv" else x.detach().reshape(-1, x.shape[-1])
        out = out.detach().movedim(1, -1) if role == "conv" else out.detach()
        seen.append((rows, out.reshape(-1, out.shape[-1])))
        raise _Captured  # applied once per forward (checked by consumers()): nothing later is read

    try:
        with tapping_layers({name: (module, _role(module))}, on_layer):
            feature_fn(model, images)
    except _Captured:
        pass
    return seen[0]


@torch.no_grad()
def refit_layer(weight: Tensor, bias: Tensor | None, targets: Iterable[Tensor], pruned_rows: Iterable[Tensor],
                damping: float) -> tuple[Tensor, Tensor | None]:
    """The damped least-squares refit of one layer (see the module docstring), in float64.

    ``weight`` (out, k) is flattened to columns; ``targets[i]`` (n_i, out) are the dense layer's outputs at
    the kept rows and ``pruned_rows[i]`` (n_i, k) the pruned layer's inputs, for the same images.
    """
    w0 = weight.double().flatten(1)
    k = w0.shape[1] + (bias is not None)
    gram = torch.zeros(k, k, dtype=torch.float64, device=w0.device)
    cross = torch.zeros(w0.shape[0], k, dtype=torch.float64, device=w0.device)
    for whole_y, whole_p in zip(targets, pruned_rows):
        step = max(1, CHUNK_ELEMENTS // k)  # float64 copies of a bounded number of rows
        for y, xp in zip(whole_y.split(step), whole_p.split(step)):
            xp = xp.double()
            if bias is not None:
                xp = torch.cat([xp, xp.new_ones(len(xp), 1)], 1)
            gram += xp.T @ xp
            cross += y.double().T @ xp
    start = torch.cat([w0, bias.double()[:, None]], 1) if bias is not None else w0
    lam = ridge_amount(gram, damping)
    solved = torch.linalg.solve(gram + lam * torch.eye(k, dtype=torch.float64, device=w0.device),
                                (cross + lam * start).T).T
    new_weight = solved[:, : w0.shape[1]].reshape(weight.shape).to(weight.dtype)
    return new_weight, (solved[:, -1].to(bias.dtype) if bias is not None else None)


@torch.no_grad()
def refit_consumers(dense: nn.Module, pruned: nn.Module, structure: Mapping[str, Any],
                    batches: Sequence[tuple[Tensor, Any]], feature_fn: FeatureFn, damping: float = 1e-2) -> list[str]:
    """Refit, in place and in forward order, every layer of ``pruned`` that lost input channels (see the
    module docstring); ``dense`` is the encoder before the cut. Returns the refit layers' names."""
    names = consumers(pruned, structure, batches[0][0], feature_fn)
    for name in names:
        layer = pruned.get_submodule(name)
        kept = structure["modules"][name].get("out")  # the dense outputs the cut layer still produces
        targets = (_layer_rows(dense, name, images, feature_fn)[1] for images, _ in batches)  # a batch at a time
        pruned_rows = (_layer_rows(pruned, name, images, feature_fn)[0] for images, _ in batches)
        if kept is not None:
            targets = (y[:, kept] for y in targets)
        with eval_mode(dense), eval_mode(pruned):  # BatchNorm on its running statistics, which stay untouched
            weight, bias = refit_layer(layer.weight, layer.bias, targets, pruned_rows, damping)
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)
    return names
