r"""Sequential (layer-wise) OBS recovery: prune and reconstruct layer after layer, in forward order.

As in OBC (Frantar et al., NeurIPS 2022) and SparseGPT (Frantar & Alistarh, ICML 2023; reference
code IST-DASLab/sparsegpt), each prunable layer sees the inputs produced by the *already pruned and
updated* layers before it: for layer ``l`` the calibration images run through the current network up
to ``l`` (the forward stops there), its inputs ``X`` give ``H = X X^T`` (accumulated in float64 batch
by batch, never holding all of them), damped by ``damping * mean(diag H)``, and the layer's weights
are pruned and the kept ones updated to keep ``W X`` (the unpruned weights on the current inputs).

Inputs per layer type: a Linear's rows are its input vectors (every token is a row); a conv's are
its unfolded input patches (``F.unfold`` order, as in :mod:`pait.scores.kfac`; :mod:`pait.layers.conv`); a grouped or
depthwise conv has one ``H`` per group, over that group's channels only; ``nn.MultiheadAttention``
(self-attention) has ``in_proj`` over the tokens and ``out_proj`` over the attention outputs. A
layer with a bias gets a trailing ones input: the bias is never pruned but absorbs part of the error.

Mask modes:

* ``fixed`` holds the given mask and solves each row's least-squares problem exactly: the per-row
  OBS closed form of :func:`pait.prune.obs.obs_rows` (rows batched by their number of pruned entries, one
  small Cholesky per row). SparseGPT's block-lazy column sweep (one Cholesky per layer) is *not*
  used here: with a mask chosen before the sweep it cannot move kept weights left of a pruned one,
  and on random 50% masks of a 16-wide layer its error was 2-3x the exact one's, at times above
  plain zeroing (see ``tests/test_sequential.py``).
* ``adaptive`` keeps only each layer's number of pruned weights from the mask and lets SparseGPT's
  per-block OBS selection choose which, with its block-lazy sweep (:func:`pait.prune.sparsegpt.reconstruct`,
  one Cholesky per layer or per group): the mask is chosen on the already-updated weights, which is
  what makes the sweep sound. With an N:M pattern (``nm``), each layer whose row length is a multiple
  of ``m`` is instead re-selected ``n`` of every ``m`` per group of columns as the sweep reaches it
  (SparseGPT's ``prunen``/``prunem``), so the mask stays N:M; a layer the N:M mask left dense stays so.

Inputs that are always zero on the calibration images (``diag H = 0``) are handled as in the
reference: in ``adaptive`` mode their weights are set to 0 and pruned first, at no cost; in both
modes they are decoupled from the other inputs, and the result does not depend on the scale of ``H``
(see :mod:`pait.prune.sparsegpt`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pait.errors import ConfigError
from pait.layers.conv import grouped_patches, patch_elements
from pait.layers.inverses import gram_damped_inverse
from pait.layers.modes import eval_mode
from pait.layers.taps import covering_owners, tapping_layers
from pait.masks import Mask
from pait.prune.obs import obs_rows
from pait.prune.sparsegpt import reconstruct
from pait.scores.registry import Batches

MASK_MODES = ("fixed", "adaptive")
MAX_ELEMENTS = 2**24  # unfolded patch entries converted to float64 at once


class _Reached(Exception):
    """Raised by the hook of the layer being collected: the rest of the forward is not needed."""


@dataclass
class _Layer:
    key: str
    module: nn.Module
    role: str  # linear, conv, in (MHA in_proj) or out (MHA out_proj)
    weight: nn.Parameter
    bias: Tensor | None

    @property
    def groups(self) -> int:
        return self.module.groups if self.role == "conv" else 1


def _layer(key: str, module: nn.Module, role: str) -> _Layer:
    if role == "in":
        return _Layer(key, module, role, module.in_proj_weight, module.in_proj_bias)
    if role == "out":
        return _Layer(key, module, role, module.out_proj.weight, module.out_proj.bias)
    return _Layer(key, module, role, module.weight, module.bias)


class _Gram:
    """Sums X^T X (per group), the column sums and the row count of one layer's inputs."""

    def __init__(self, layer: _Layer) -> None:
        self.layer = layer
        self.xx: Tensor | None = None
        self.sums: Tensor | None = None
        self.rows = 0

    def add(self, x: Tensor) -> None:
        """Add the inputs ``x`` the layer received (a conv's image batch, or token/vector rows)."""
        if self.layer.role == "conv":
            step = max(1, MAX_ELEMENTS // max(1, patch_elements(self.layer.module, x[:1])))
            for chunk in x.split(step):
                self._add_rows(grouped_patches(self.layer.module, chunk))
        else:
            self._add_rows(x.reshape(1, -1, x.shape[-1]))

    def _add_rows(self, rows: Tensor) -> None:
        rows = rows.double()
        xx, sums = rows.transpose(1, 2) @ rows, rows.sum(1)
        self.xx = xx if self.xx is None else self.xx + xx
        self.sums = sums if self.sums is None else self.sums + sums
        self.rows += rows.shape[1]

    def hessian(self) -> Tensor:
        """(G, d, d) mean of x x^T, with the ones column appended when the layer has a bias."""
        h = self.xx / self.rows
        if self.layer.bias is None:
            return h
        g, d, _ = h.shape
        out = h.new_empty(g, d + 1, d + 1)
        out[:, :d, :d] = h
        out[:, :d, d] = out[:, d, :d] = self.sums / self.rows
        out[:, d, d] = 1.0
        return out


class _Collector:
    """Called on every tapped layer call: records the forward order, or collects the inputs of one target layer."""

    def __init__(self, layers: list[_Layer]) -> None:
        self.layers = {layer.key: layer for layer in layers}
        self.order: list[str] = []
        self.target: _Gram | None = None

    def __call__(self, key: str, _module: nn.Module, _role: str, x: Tensor, _output: Tensor) -> None:
        if self.target is None:
            self.order.append(key)
        elif self.target.layer.key == key:
            self.target.add(x.detach())
            raise _Reached


def _run(model: nn.Module, images: Tensor) -> None:
    try:
        model(images)
    except _Reached:
        pass
    except NotImplementedError as err:
        raise ConfigError(f"sequential recovery: {err}") from err


@torch.no_grad()
def sequential_prune(
    model: nn.Module,
    batches: Batches,
    params: Mapping[str, nn.Parameter],
    mask: Mask,
    mode: str = "fixed",
    damping: float = 1e-3,
    blocksize: int = 128,
    on_layer: Callable[[str, nn.Module, float], None] | None = None,
    nm: tuple[int, int] | None = None,
) -> Mask:
    """Prune the weights of ``mask`` (True = kept) in ``model`` in place, layer after layer; return the mask applied.

    ``params`` maps the mask's keys to the model's parameters; ``batches`` are (images, labels) with
    normalised images (labels unused); ``damping`` is relative to ``mean(diag H)``. ``on_layer``
    receives each layer's key, module and seconds (collection plus solve), in forward order. ``nm``
    (n kept of every m, ``adaptive`` mode only) re-selects each layer N:M instead of by count.
    """
    if nm is not None and mode != "adaptive":
        raise ValueError(f"sequential recovery: an N:M pattern is re-selected only in adaptive mode, not {mode!r}")
    if mode not in MASK_MODES:
        raise ConfigError(f"unknown sequential mask mode {mode!r}; choose one of {', '.join(MASK_MODES)}")
    try:
        owners = covering_owners(model, {k: params[k] for k in mask}, "sequential")
    except NotImplementedError as err:
        raise ConfigError(f"sequential recovery: {err}") from err
    collector = _Collector([_layer(k, mod, role) for k, (mod, role) in owners.items()])
    applied: Mask = {}
    with eval_mode(model), tapping_layers(owners, collector):
        if not batches:
            raise ConfigError("sequential recovery: the calibration batches are empty")
        _run(model, batches[0][0])
        _check_order(collector.order, list(mask))
        for key in collector.order:
            start = time.perf_counter()
            layer = collector.layers[key]
            collector.target = _Gram(layer)
            for images, _ in batches:
                _run(model, images)
            applied[key] = _prune_layer(layer, collector.target.hessian(), mask[key], mode, damping, blocksize, nm)
            collector.target = None
            if on_layer is not None:
                on_layer(key, layer.module, time.perf_counter() - start)
    return {k: applied[k] for k in mask}


def _check_order(order: list[str], keys: list[str]) -> None:
    repeated = sorted({k for k in order if order.count(k) > 1})
    if repeated:
        raise ConfigError("sequential recovery needs each layer applied once per forward; applied more often: "
                          + ", ".join(repeated))
    unused = [k for k in keys if k not in order]
    if unused:
        raise ConfigError("sequential recovery: layers not applied in the forward: " + ", ".join(unused))


def _prune_layer(layer: _Layer, hessian: Tensor, keep: Tensor, mode: str, damping: float, blocksize: int,
                 nm: tuple[int, int] | None = None) -> Tensor:
    """Reconstruct one layer in place from its input Gram matrix; return its mask (weight shape)."""
    p = layer.weight
    row_length = p[0].numel() if p.ndim > 1 else p.numel()
    nm = nm if nm is not None and row_length % nm[1] == 0 else None
    if mode == "adaptive" and nm is None and bool(keep.all()):
        return keep  # nothing to prune (e.g. a layer an N:M mask left dense): the layer stays as it is
    g = layer.groups
    w = p.detach().reshape(g, p.shape[0] // g, -1)
    keep3 = keep.to(p.device, torch.bool).reshape(w.shape)
    if layer.bias is not None:
        w = torch.cat([w, layer.bias.detach().reshape(g, -1, 1)], 2)
        keep3 = torch.cat([keep3, keep3.new_ones(*keep3.shape[:2], 1)], 2)
    if mode == "fixed":
        inverse = gram_damped_inverse(hessian, damping)
        rows = obs_rows(w.reshape(-1, w.shape[-1]), keep3.reshape(-1, w.shape[-1]), inverse)
        new, kept = rows.view(w.shape), keep3
    else:
        count = {"nm": nm} if nm is not None else {"n_pruned": int((~keep3).sum())}
        new, kept = reconstruct(w, hessian, damping=damping, blocksize=blocksize, protected=int(layer.bias is not None),
                                **count)
    if layer.bias is not None:
        layer.bias.copy_(new[:, :, -1].reshape(layer.bias.shape))
        new, kept = new[:, :, :-1], kept[:, :, :-1]
    p.copy_(new.reshape(p.shape).to(p.dtype))
    return kept.reshape(p.shape).to(keep.device)
