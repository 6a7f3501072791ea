"""PX, Path eXclusion (Iurada, Sanfilippo, Tommasi, CVPR 2024), for ReLU conv nets.

Follows the authors' published description and reference implementation (repository
``iurada/px-ntk-pruning``, class ``PX``). Three copies of the model, in eval mode:

* the *activation* model: the model itself on the data, recording which inputs of every ReLU are
  positive (the 0/1 gates of the active paths);
* the *path-kernel* model ``pk``: ReLUs switched off (identity), every floating parameter and
  buffer squared (weights, biases, norm affine and running statistics, the head), fed all-ones;
* the *path-activation* model ``jvf``: ReLUs replaced by multiplication with the recorded gates,
  conv/linear weights and every other floating tensor set to one, biases to zero, BatchNorm set to
  the identity (mean 0, variance 1, scale 1, shift 0), fed the squared images.

Per batch ``R = sum(jvf(x^2) * pk(1))`` (no gradient through ``jvf``); the score is
``theta^2 * sum_batches (dR / d(theta^2))^2``, the derivative taken w.r.t. ``pk``'s squared weights.
Max pooling is kept as is in every copy, as in the reference code.

Scope: the decomposition into paths needs piecewise-linear ReLU gates, so models with attention
or with any other activation module (GELU, SiLU, ReLU6, ...) are refused with a ValueError.
Activations applied as functions rather than modules cannot be seen: they stay on in every copy
(on the non-negative signals of ``jvf`` they are the identity anyway).
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from pait.errors import ConfigError
from pait.scores._common import eval_mode, model_names
from pait.scores.registry import Batches, Params, register_score

_REFUSED = (nn.MultiheadAttention, nn.GELU, nn.SiLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
            nn.Tanh, nn.ELU, nn.LeakyReLU, nn.Softmax, nn.Mish, nn.Softplus, nn.PReLU, nn.SELU, nn.CELU)


class _Gate(nn.Module):
    """Replaces a ReLU: the identity (``gates`` None) or multiplication by the next recorded gate."""

    def __init__(self, gates: list[Tensor] | None) -> None:
        super().__init__()
        self.gates = gates

    def forward(self, x: Tensor) -> Tensor:
        return x if self.gates is None else x * self.gates.pop(0)


def check_px_applies(model: nn.Module) -> None:
    """Raise a ConfigError unless every activation module is a ReLU and there is no attention."""
    for name, mod in model.named_modules():
        if isinstance(mod, _REFUSED) or "attention" in type(mod).__name__.lower() or type(mod).__name__ == "Attention":
            raise ConfigError(f"px applies to ReLU conv nets only (Iurada et al., CVPR 2024); {name or 'the model'} "
                             f"is a {type(mod).__name__}")
    if not any(isinstance(m, nn.ReLU) for m in model.modules()):
        raise ConfigError("px applies to ReLU conv nets only (Iurada et al., CVPR 2024); the model has no nn.ReLU")


def _swap_relus(model: nn.Module, gates: list[Tensor] | None) -> None:
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if isinstance(child, nn.ReLU):
                setattr(parent, child_name, _Gate(gates))


@torch.no_grad()
def _path_activation_model(model: nn.Module, gates: list[Tensor]) -> nn.Module:
    jvf = copy.deepcopy(model)
    _swap_relus(jvf, gates)
    for mod in jvf.modules():
        if isinstance(mod, _BatchNorm):
            for t, v in ((mod.running_mean, 0.0), (mod.running_var, 1.0), (mod.weight, 1.0), (mod.bias, 0.0)):
                if t is not None:
                    t.fill_(v)
        for name, t in [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]:
            if t.is_floating_point() and not isinstance(mod, _BatchNorm):
                t.fill_(0.0 if name.endswith("bias") else 1.0)
    return jvf


@register_score("px")
def px(model: nn.Module, batches: Batches, params: Params) -> dict[str, Tensor]:
    """PX scores (see the module docstring); one pass over ``batches``; ReLU conv nets only."""
    check_px_applies(model)
    names = model_names(model, params)
    pk = copy.deepcopy(model)
    with torch.no_grad():
        for t in [*pk.parameters(), *pk.buffers()]:
            if t.is_floating_point():
                t.pow_(2)
    _swap_relus(pk, None)
    gates: list[Tensor] = []
    jvf = _path_activation_model(model, gates)
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    hooks = [m.register_forward_hook(lambda m, i, o: gates.append((o > 0).to(o.dtype))) for m in relus]
    pk_params = dict(pk.named_parameters())
    targets = [pk_params[names[k]].requires_grad_(True) for k in params]
    sums = [torch.zeros_like(t) for t in targets]
    try:
        with eval_mode(model), eval_mode(pk), eval_mode(jvf):
            for images, _ in batches:
                with torch.no_grad():
                    gates.clear()
                    model(images)
                    z1 = jvf(images.pow(2))
                r = (z1 * pk(torch.ones_like(images))).sum()
                for acc, g in zip(sums, torch.autograd.grad(r, targets, allow_unused=True)):
                    if g is not None:
                        acc.add_(g.pow(2))
    finally:
        for h in hooks:
            h.remove()
    return {k: p.detach().pow(2) * s for (k, p), s in zip(params.items(), sums)}
