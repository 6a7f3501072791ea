r"""K-FAC factors (empirical Fisher, KFAC-expand) and the K-FAC OBS score.

Conventions, for a weight ``W`` of shape ``(out, in)`` (a conv weight ``(out, in/groups, kh, kw)``
is viewed as ``(out, in/groups*kh*kw)``, the column order of ``F.unfold``):

* Ordering: the Kronecker product ``A (x) B`` acts on ``vec(W)``, the *column-stacked* weight, so
  entry ``W[k, i]`` has index ``i * out + k``; ``A`` (inputs, ``in x in``) is the slow index and
  ``B`` (outputs, ``out x out``) the fast one. For torch's row-major ``W.reshape(-1)`` the
  matching product is ``B (x) A``. Hence ``[(A (x) B)^-1]`` at ``W[k, i]`` is
  ``[A^-1]_ii [B^-1]_kk``.
* Expand (Eschenhagen et al., NeurIPS 2023): every token of a ViT and every output position of a
  conv is one more row, so with ``N`` examples of ``T`` rows each,
  ``A = 1/(N T) sum_{n,t} a_nt a_nt^T`` and ``B = 1/N sum_{n,t} g_nt g_nt^T``.
* ``g_nt = dl_n / ds_nt`` is the gradient of the *per-example* loss ``l_n`` (MSE to the one-hot
  label, mean over classes) w.r.t. the layer's pre-activation ``s``: the empirical Fisher with a
  *mean* over examples, ``F = 1/N sum_n grad l_n grad l_n^T ~ A (x) B``. (curvlinops'
  ``KFACLinearOperator`` with ``fisher_type="empirical"`` and ``MSELoss()`` returns the same ``A``
  and ``C * B``, C the number of classes, since it rescales the mean-reduced MSE by ``sqrt(C)``.)
* Bias: when the layer has a bias and ``include_bias`` is true, ``A`` gets a trailing ones column
  (``a -> [a, 1]``, size ``in + 1``), the joint weight-and-bias factor used by OBS recovery. The
  score uses only the weight block ``A[:in, :in]`` (biases are never pruned).
* Grouped convs: inputs are averaged over channel groups before unfolding (curvlinops' choice).
* ``nn.MultiheadAttention``: ``in_proj_weight`` (``3E x E``) is one Linear ``E -> 3E`` over the
  tokens, ``out_proj.weight`` one Linear ``E -> E`` over the attention outputs; self-attention only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from timm.layers import Conv2dSame
from timm.layers.padding import pad_same
from torch import Tensor, nn

from pait.headed import mse_to_one_hot
from pait.scores._attention import tapping
from pait.scores._common import eval_mode, requiring_grad
from pait.scores.registry import Batches, Params, register_score

Factors = dict[str, tuple[Tensor, Tensor]]


def conv_padding(conv: nn.Conv2d, x: Tensor) -> tuple[Tensor, int | tuple[int, ...]]:
    """The input (padded here for timm's ``Conv2dSame``) and the ``F.unfold`` padding that ``conv`` applies."""
    if conv.padding_mode != "zeros":
        raise NotImplementedError(f"kfac: padding_mode {conv.padding_mode!r} is not supported")
    padding = conv.padding
    if isinstance(conv, Conv2dSame):
        x, padding = pad_same(x, conv.kernel_size, conv.stride, conv.dilation), 0
    elif padding == "valid":
        padding = 0
    elif padding == "same":
        if any(d * (k - 1) % 2 for k, d in zip(conv.kernel_size, conv.dilation)):
            raise NotImplementedError("kfac: asymmetric 'same' padding is not supported")
        padding = tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))
    return x, padding


def _conv_patches(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """Rows of unfolded input patches, (N * positions, in/groups * kh * kw), groups averaged."""
    x, padding = conv_padding(conv, x)
    if conv.groups > 1:
        x = x.unflatten(1, (conv.groups, -1)).mean(1)
    patches = F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=padding, stride=conv.stride)
    return patches.transpose(1, 2).reshape(-1, patches.shape[1])


def _owners(model: nn.Module, params: Params) -> dict[str, tuple[nn.Module, str]]:
    """For each key of ``params``: the module that applies it and its role (linear/conv/in/out)."""
    owner: dict[int, tuple[nn.Module, str]] = {}
    for mod in model.modules():
        if isinstance(mod, nn.MultiheadAttention):
            if mod.in_proj_weight is not None:
                owner[id(mod.in_proj_weight)] = (mod, "in")
            owner[id(mod.out_proj.weight)] = (mod, "out")
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)) and id(mod.weight) not in owner:
            owner[id(mod.weight)] = (mod, "conv" if isinstance(mod, nn.Conv2d) else "linear")
    unknown = [k for k, p in params.items() if id(p) not in owner]
    if unknown:
        raise NotImplementedError(
            "kfac covers Linear/Conv2d weights and MultiheadAttention projections only; not: " + ", ".join(unknown))
    return {k: owner[id(p)] for k, p in params.items()}


class _Accumulator:
    """Sums a a^T and (per-example) g g^T per key, with row counts for the expand normalisation."""

    def __init__(self, include_bias: bool) -> None:
        self.include_bias = include_bias
        self.aa: dict[str, Tensor] = {}
        self.gg: dict[str, Tensor] = {}
        self.rows: dict[str, int] = {}
        self.batch_size = 0

    def record(self, key: str, a: Tensor, s: Tensor, has_bias: bool, channels_first: bool) -> None:
        """Add the rows ``a`` (M, d_in) now and, on backward, the gradient rows of output ``s``."""
        a = a.detach()
        if has_bias and self.include_bias:
            a = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
        self._add(self.aa, key, a.T @ a)
        self.rows[key] = self.rows.get(key, 0) + a.shape[0]
        scale = self.batch_size  # d(batch mean loss)/ds * batch size = d(per-example loss)/ds

        def on_grad(g: Tensor) -> None:
            g = g.detach().movedim(1, -1) if channels_first else g.detach()
            g = g.reshape(-1, g.shape[-1]) * scale
            self._add(self.gg, key, g.T @ g)

        s.register_hook(on_grad)

    @staticmethod
    def _add(store: dict[str, Tensor], key: str, value: Tensor) -> None:
        store[key] = store[key] + value if key in store else value


def kfac_factors(model: nn.Module, batches: Batches, params: Params, include_bias: bool = True) -> Factors:
    """Empirical K-FAC (expand) factors ``{key: (A, B)}`` for each weight of ``params``.

    See the module docstring for the index ordering, the expand convention, the mean-over-examples
    scaling and the optional bias column of ``A``. One pass over ``batches``; the model runs in eval
    mode (BN statistics untouched) and its parameters are left unchanged.
    """
    owners = _owners(model, params)
    acc = _Accumulator(include_bias)
    handles, taps = [], {}
    for key, (mod, role) in owners.items():
        if role in ("linear", "conv"):
            handles.append(mod.register_forward_hook(_module_hook(acc, key, role)))
        else:
            taps.setdefault(mod, {})[role] = key
    count = 0
    try:
        with eval_mode(model), requiring_grad(params), tapping({m: _mha_tap(acc, m, k) for m, k in taps.items()}):
            for images, labels in batches:
                acc.batch_size = len(images)
                loss = mse_to_one_hot(model(images), labels)
                torch.autograd.grad(loss, list(params.values()), allow_unused=True)
                count += len(images)
    finally:
        for h in handles:
            h.remove()
    if not count:
        raise ValueError("the calibration batches are empty")
    return {k: (acc.aa[k] / acc.rows[k], acc.gg[k] / count) for k in params}


def _module_hook(acc: _Accumulator, key: str, role: str) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
    def hook(mod: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        x = inputs[0]
        a = _conv_patches(mod, x) if role == "conv" else x.reshape(-1, x.shape[-1])
        acc.record(key, a, output, mod.bias is not None, channels_first=role == "conv")

    return hook


def _mha_tap(acc: _Accumulator, mha: nn.MultiheadAttention, keys: dict[str, str]) -> Callable[[str, Tensor, Tensor], None]:
    def tap(role: str, x: Tensor, s: Tensor) -> None:
        if role in keys:
            bias = mha.in_proj_bias if role == "in" else mha.out_proj.bias
            acc.record(keys[role], x.reshape(-1, x.shape[-1]), s, bias is not None, channels_first=False)

    return tap


def damped_inverse_diagonal(factor: Tensor, damping: float) -> Tensor:
    """diag((F + damping * mean(diag F) * I)^-1) via Cholesky, in float64.

    The damping is relative to the factor's mean eigenvalue, so it does not depend on the loss scale.
    """
    f = factor.double()
    scale = f.diagonal().mean().clamp_min(torch.finfo(torch.float64).eps)
    damped = f + damping * scale * torch.eye(f.shape[0], dtype=f.dtype, device=f.device)
    return torch.cholesky_inverse(torch.linalg.cholesky(damped)).diagonal()


@register_score("kfac")
def kfac(model: nn.Module, batches: Batches, params: Params, damping: float = 1e-3) -> dict[str, Tensor]:
    """OBS saliency theta^2 / [H^-1]_jj with H ~ A (x) B per layer: theta_ki^2 / ([A^-1]_ii [B^-1]_kk).

    ``A`` is the weight block of the factor (no bias column), each factor damped by ``damping`` times
    its mean eigenvalue (default 1e-3) before its Cholesky inverse; ``A (x) B`` is never formed.
    One pass over ``batches``.
    """
    factors = kfac_factors(model, batches, params, include_bias=False)
    scores = {}
    for key, p in params.items():
        a, b = factors[key]
        inv_a, inv_b = damped_inverse_diagonal(a, damping), damped_inverse_diagonal(b, damping)
        w = p.detach().reshape(p.shape[0], -1).double()
        scores[key] = (w.pow(2) / (inv_b[:, None] * inv_a[None, :])).reshape(p.shape).to(p.dtype)
    return scores
