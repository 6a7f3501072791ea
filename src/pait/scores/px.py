"""PX, Path eXclusion (Iurada, Ciccone, Tommasi, CVPR 2024): iterative, data-dependent, ReLU conv nets.

Ported from the authors' code (repository ``iurada/px-ntk-pruning``: ``lib/pruners.py``, class ``PX``,
and the pruning loop of ``train_classification.py`` / ``transfer_classification.py``, run with
``'rounds': 100`` by every launch script). Each round uses three copies of the current (masked) model:

* the *activation* copy, in eval mode, on the calibration images: the 0/1 gate of every ReLU;
* the *path-activation* copy ``jvf``, on the squared images: every ReLU multiplies by its recorded
  gate, the scored layers' weights are their mask (one where kept) and their biases one;
* the *path-kernel* copy ``pk``, on all-ones images: every ReLU is the identity, the scored layers'
  weights and biases are squared (weights times their mask).

In both helper copies the BatchNorm layers and the classifier keep their values, as in the reference;
``jvf``'s BatchNorm runs on batch statistics (train mode), ``pk``'s on its running statistics (see the
differences). Data dependence enters through the classifier, which weighs each class output of ``pk``
by the summed ``jvf`` output. ``R = sum_b sum(jvf(x_b^2) * pk(1))`` (no gradient through ``jvf``)
and the score is ``theta^2 * |dR / d(theta^2)|`` (the gradient summed over batches before its absolute
value), taken w.r.t. ``pk``'s squared weights; pruned weights score 0. Round ``r`` of ``rounds`` then masks globally to density ``(1 - sparsity) ** (r / rounds)``;
the last round's scores are returned, so ``global_mask(scores, sparsity)`` gives the final mask. Max
pooling is kept as is in every copy, as in the reference.

Options: ``sparsity`` (set by the grid; 0 <= sparsity < 1; at 0 a single round is run, since no round
prunes anything) and ``rounds`` (an int >= 1; default 100 as the authors' launch scripts; 1 scores
the unpruned model once). Cost per round: two forward passes over the calibration images (no
gradient) and one forward and backward pass of ``pk`` on one image; ``rounds`` times that per sparsity
(on CPU, lower ``rounds`` for large calibration sets).

Intentional differences from the reference, each for a reason:

* ``pk``'s BatchNorm uses its running statistics (eval mode) where the reference's ``pk_model`` is in
  train mode. On all-ones images every example of the batch is the same, so a BatchNorm on batch
  statistics gives each channel spatial mean exactly its shift ``beta``; in a BatchNorm ResNet every
  path into the global average pool ends in such a BatchNorm (the shortcuts included), so the pooled
  features, hence ``R``, do not depend on any conv weight and every conv score is rounding noise
  (in float64, 1e-14 of the linear layers' scores on the tests' tiny net; see
  ``tests/scores/test_px_reference.py``). The authors' earlier version fed ``pk`` the data, where this
  does not happen; with running statistics ``pk`` is a fixed linear network of the squared weights.
* The scored layers (the conv / linear modules whose weights are in ``params``) are the ones
  transformed; every other tensor keeps its value. The reference transforms every tensor whose name
  contains neither ``bn`` nor ``fc``: in pait's encoders that is the same set (the head is pait's frozen
  ridge head, or any layer not in ``params``, as the reference's ``fc``), but its name rule also squares
  or sets to one the BatchNorm layers it does not name ``bn*`` (its ResNets' ``shortcut.1`` and
  ``downsample.1``), an accident of naming: here every BatchNorm is recognised by type. The classifier
  is never scored (pait does not prune its head; the reference's transfer runs do not prune theirs,
  its classification runs prune ``fc`` too).
* Only BatchNorm runs in train mode in the helper copies; the reference's ``.train()`` on the whole copy
  would also switch on dropout and stochastic depth (its networks have none), making the score random.
* ``pk`` runs once per round on one all-ones image, and its output is weighed by the ``jvf`` outputs
  summed over every calibration image, where the reference runs it once per batch on as many ones as
  images. Identical in exact arithmetic (``pk`` gives every all-ones image the same output and ``R`` is
  linear in the ``jvf`` outputs), and one ``pk`` pass per round instead of one per batch.
* Masks count exactly: each round prunes exactly ``round(s * total)`` weights (ties by position,
  weights pruned earlier first) where the reference's ``kthvalue`` threshold with ``<=`` prunes every
  weight tied at the threshold and truncates the kept count (``int``, where pait rounds).
* The calibration batches are used as given; the reference draws a class-balanced subset on CIFAR and
  TinyImageNet and the whole training loader elsewhere.
* Activations are found as modules: ``nn.ReLU`` and ``nn.Hardtanh`` with ``min_val`` 0 (``nn.ReLU6``).
  The reference intercepts every call of ``F.relu`` and ``F.leaky_relu``; an activation applied as a
  function inside a ``forward`` is not seen here and stays as it is in every copy, and LeakyReLU (which
  the reference gates as a ReLU) is refused.
* ReLU6 (EfficientNet-Lite): the path decomposition needs every activation to be its input times a 0/1
  gate. ReLU6 is that wherever it does not saturate: ``relu6(x) = x * 1[0 < x < 6] + 6 * 1[x >= 6]``. It
  is gated by its derivative ``1[0 < x < 6]`` (a saturated unit passes no signal from its input) and is
  the identity in ``pk``, as a ReLU. This assumes that the constant 6 a saturated unit outputs, which
  no path from the input reaches, may be left out as a constant offset (a bias) is: the decomposition
  is exact where no unit saturates on the calibration images, and approximate in proportion to how
  many do.

Scope: the decomposition into paths needs piecewise-linear gates, so models with attention or any other
activation module (GELU, SiLU, Hardswish, LeakyReLU, a Hardtanh passing negative values, ...) are
refused with a ConfigError, as is a calibration batch that leaves a BatchNorm of ``jvf`` one value per
channel (batch statistics need two).
"""

from __future__ import annotations

import copy
import warnings
from collections import deque

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from pait.errors import ConfigError
from pait.masks import check_sparsity, global_mask
from pait.scores._common import model_names
from pait.scores.registry import Batches, Params, register_score
from pait.typed import Count

_REFUSED = (nn.MultiheadAttention, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.ELU,
            nn.LeakyReLU, nn.Softmax, nn.Mish, nn.Softplus, nn.PReLU, nn.SELU, nn.CELU)
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_SCOPE = "px applies to ReLU conv nets only (Iurada et al., CVPR 2024)"


def _is_gated(mod: nn.Module) -> bool:
    """ReLU, or a Hardtanh clamping at 0 from below (ReLU6): its input times a 0/1 gate where it is linear."""
    return isinstance(mod, nn.ReLU) or (isinstance(mod, nn.Hardtanh) and mod.min_val == 0 and mod.max_val > 0)


def _gate(mod: nn.Module, out: Tensor) -> Tensor:
    """The 0/1 gate of a gated activation from its output (its input may have been overwritten in place)."""
    open_ = out > 0
    if isinstance(mod, nn.Hardtanh):
        open_ &= out < mod.max_val
    return open_


class _Gate(nn.Module):
    """Replaces a gated activation: the identity (``gates`` None) or multiplication by the next recorded gate."""

    def __init__(self, gates: deque[Tensor] | None) -> None:
        super().__init__()
        self.gates = gates

    def forward(self, x: Tensor) -> Tensor:
        return x if self.gates is None else x * self.gates.popleft()


def check_px_applies(model: nn.Module) -> None:
    """Raise a ConfigError unless every activation module is a ReLU or ReLU6 and there is no attention."""
    for name, mod in model.named_modules():
        kind = type(mod).__name__
        if isinstance(mod, _REFUSED) or (isinstance(mod, nn.Hardtanh) and not _is_gated(mod)) \
                or "attention" in kind.lower():
            raise ConfigError(f"{_SCOPE}; {name or 'the model'} is a {kind}, not the input times a 0/1 gate")
    if not any(_is_gated(m) for m in model.modules()):
        raise ConfigError(f"{_SCOPE}; the model has no nn.ReLU or nn.ReLU6 module")


def _swap_activations(model: nn.Module, gates: deque[Tensor] | None) -> None:
    for parent in list(model.modules()):
        for child_name, child in parent.named_children():
            if _is_gated(child):
                setattr(parent, child_name, _Gate(gates))


def _batchnorm_on_batch_statistics(model: nn.Module) -> nn.Module:
    model.eval()
    for mod in model.modules():
        if isinstance(mod, _BatchNorm):
            mod.train()
    return model


def _scored_layers(model: nn.Module, names: dict[str, str]) -> dict[str, nn.Module]:
    """key -> the conv / linear module of ``model`` whose ``weight`` the key names; a ConfigError otherwise."""
    layers = {}
    for key, name in names.items():
        path, _, attr = name.rpartition(".")
        mod = model.get_submodule(path)
        if attr != "weight" or not isinstance(mod, _LAYERS):
            raise ConfigError(f"px scores conv and linear weights only; {key} is {attr} of a {type(mod).__name__}")
        layers[key] = mod
    return layers


class _Copies:
    """The activation, path-activation and path-kernel copies of a model, masked together."""

    def __init__(self, model: nn.Module, params: Params) -> None:
        names = model_names(model, params)
        self.theta = {k: p.detach() for k, p in params.items()}
        self.gates: deque[Tensor] = deque()
        self.act = copy.deepcopy(model).eval()
        self.jvf = _batchnorm_on_batch_statistics(copy.deepcopy(model))
        self.pk = copy.deepcopy(model).eval()
        self.act_layers, self.jvf_layers, self.pk_layers = (_scored_layers(m, names) for m in (self.act, self.jvf, self.pk))
        self.hooks = [m.register_forward_hook(self._record) for m in self.act.modules() if _is_gated(m)]
        _swap_activations(self.jvf, self.gates)
        _swap_activations(self.pk, None)
        self.pk.requires_grad_(False)
        with torch.no_grad():
            for jvf_layer, pk_layer in zip(self.jvf_layers.values(), self.pk_layers.values()):
                if jvf_layer.bias is not None:
                    jvf_layer.bias.fill_(1.0)
                    pk_layer.bias.pow_(2)
        self.apply({k: torch.ones_like(t, dtype=torch.bool) for k, t in self.theta.items()})

    def _record(self, mod: nn.Module, inputs: tuple[Tensor, ...], out: Tensor) -> None:
        self.gates.append(_gate(mod, out))

    @torch.no_grad()
    def apply(self, mask: dict[str, Tensor]) -> None:
        """Set every scored weight to its masked value: theta (activation), 1 (jvf), theta^2 (pk)."""
        for k, theta in self.theta.items():
            kept = mask[k].to(theta.device, theta.dtype)
            self.act_layers[k].weight.copy_(theta * kept)
            self.jvf_layers[k].weight.copy_(kept)
            self.pk_layers[k].weight.copy_(theta.pow(2) * kept)

    def scores(self, batches: Batches, mask: dict[str, Tensor]) -> dict[str, Tensor]:
        """One round's ``theta^2 * |dR / d(theta^2)|`` on the current mask."""
        total: Tensor | None = None
        with torch.no_grad():
            for images, _ in batches:
                self.gates.clear()
                self.act(images)
                z1 = self._path_activations(images)
                total = z1.sum(0) if total is None else total + z1.sum(0)
        if total is None:
            raise ConfigError("px needs calibration images; the calibration batches are empty")
        targets = [layer.weight.requires_grad_(True) for layer in self.pk_layers.values()]
        ones = torch.ones((1, *images.shape[1:]), dtype=images.dtype, device=images.device)
        r = (self.pk(ones)[0] * total).sum()
        grads = torch.autograd.grad(r, targets, allow_unused=True)
        out = {}
        for (k, theta), g in zip(self.theta.items(), grads):
            g = torch.zeros_like(theta) if g is None else g.abs()
            out[k] = theta.pow(2) * g * mask[k].to(theta.device, theta.dtype)
        return out

    def _path_activations(self, images: Tensor) -> Tensor:
        try:
            z1 = self.jvf(images.pow(2))
        except ValueError as exc:
            if "Expected more than 1 value per channel" not in str(exc):
                raise
            raise ConfigError(f"px runs BatchNorm on batch statistics, as its reference: a calibration batch of "
                              f"{len(images)} image(s) leaves a BatchNorm layer one value per channel; use larger "
                              f"batches or a larger input size") from None
        if self.gates:
            raise RuntimeError(f"px: {len(self.gates)} recorded gates were not used by the path-activation copy")
        return z1

    def close(self) -> None:
        for h in self.hooks:
            h.remove()


@register_score("px", per_sparsity=True, revision=1)  # 1: the authors' iterative PX (was: one shot, head set to one)
def px(model: nn.Module, batches: Batches, params: Params, sparsity: float = 0.0, rounds: Count = 100) -> dict[str, Tensor]:
    """PX scores for one target ``sparsity`` after ``rounds`` rounds (see the module docstring)."""
    check_px_applies(model)
    check_sparsity(sparsity)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ConfigError(f"px option rounds must be an integer >= 1, got {rounds!r}")
    copies = _Copies(model, params)
    mask = {k: torch.ones_like(p, dtype=torch.bool) for k, p in params.items()}
    steps = rounds if sparsity > 0 else 1
    try:
        for step in range(1, steps + 1):
            scores = copies.scores(batches, mask)
            if step < steps:
                live = {k: s.masked_fill(~mask[k], -torch.inf) for k, s in scores.items()}
                with warnings.catch_warnings():  # intermediate masks only; the caller's final mask still warns
                    warnings.filterwarnings("ignore", message="global_mask prunes these tensors entirely")
                    kept = global_mask(live, 1.0 - (1.0 - sparsity) ** (step / steps))
                mask = {k: m.to(params[k].device) for k, m in kept.items()}
                copies.apply(mask)
    finally:
        copies.close()
    return {k: s.detach() for k, s in scores.items()}
