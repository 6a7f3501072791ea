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

import typing
from typing import Literal

import torch
from torch import Tensor, nn

from pait.errors import ConfigError
from pait.heads import mse_to_one_hot
from pait.layers.conv import averaged_group_patches
from pait.layers.inverses import DampingMode, damping_amount, kfac_damped_inverse
from pait.layers.modes import eval_mode, requiring_grad
from pait.layers.taps import OnLayer, covering_owners, tapping_layers
from pait.scores.registry import Batches, Params, register_score
from pait.typed import Positive

Factors = dict[str, tuple[Tensor, Tensor]]


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
    owners = covering_owners(model, params, "kfac")
    acc = _Accumulator(include_bias)
    count = 0
    with eval_mode(model), requiring_grad(params), tapping_layers(owners, _recorder(acc)):
        for images, labels in batches:
            acc.batch_size = len(images)
            loss = mse_to_one_hot(model(images), labels)
            torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            count += len(images)
    if not count:
        raise ValueError("the calibration batches are empty")
    return {k: (acc.aa[k] / acc.rows[k], acc.gg[k] / count) for k in params}


def _recorder(acc: _Accumulator) -> OnLayer:
    """Records each tapped call of a layer: its input rows now, its output-gradient rows on backward."""

    def on_layer(key: str, mod: nn.Module, role: str, x: Tensor, s: Tensor) -> None:
        a = averaged_group_patches(mod, x) if role == "conv" else x.reshape(-1, x.shape[-1])
        has_bias = (mod.in_proj_bias if role == "in" else mod.out_proj.bias if role == "out" else mod.bias) is not None
        acc.record(key, a, s, has_bias, channels_first=role == "conv")

    return on_layer


Normalization = Literal["none", "mean"]
NORMALIZATIONS = typing.get_args(Normalization)


def kfac_scores(
    factors: Factors, params: Params, damping: float = 1.0, damping_mode: str = "relative", normalize: str = "none",
) -> dict[str, Tensor]:
    """The ``kfac`` score of each weight from precomputed ``kfac_factors(..., include_bias=False)``.

    ``normalize="mean"`` divides each layer's scores by their mean, so the global ranking compares
    weights by their saliency relative to their own layer.
    """
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"kfac: normalize {normalize!r} is not one of {', '.join(NORMALIZATIONS)}")
    scores = {}
    for key, p in params.items():
        a, b = factors[key]
        inv_a = kfac_damped_inverse(a, damping, damping_mode).diagonal()
        inv_b = kfac_damped_inverse(b, damping, damping_mode).diagonal()
        w = p.detach().reshape(p.shape[0], -1).double()
        s = w.pow(2) / (inv_b[:, None] * inv_a[None, :])
        if normalize == "mean":
            s = s / s.mean().clamp_min(torch.finfo(torch.float64).tiny)
        scores[key] = s.reshape(p.shape).to(p.dtype)
    return scores


@register_score("kfac")
def kfac(
    model: nn.Module, batches: Batches, params: Params, damping: Positive = 1.0, damping_mode: DampingMode = "relative",
    normalize: Normalization = "none",
) -> dict[str, Tensor]:
    """OBS saliency theta^2 / [H^-1]_jj with H ~ A (x) B per layer: theta_ki^2 / ([A^-1]_ii [B^-1]_kk).

    ``A`` is the weight block of the factor (no bias column). Each factor is damped before its
    Cholesky inverse by ``damping`` times its mean eigenvalue (``damping_mode="relative"``, default
    1.0, chosen in docs/findings-kfac-damping.md: smaller dampings fall under the float32 factors'
    round-off) or by ``damping`` itself (``"absolute"``); ``A (x) B`` is never formed. ``normalize``
    is "none" or "mean" (see ``kfac_scores``). One pass over ``batches``.
    """
    damping_amount(torch.zeros(1, 1), damping, damping_mode)  # reject a bad option before the pass
    if normalize not in NORMALIZATIONS:
        raise ConfigError(f"kfac: normalize {normalize!r} is not one of {', '.join(NORMALIZATIONS)}")
    factors = kfac_factors(model, batches, params, include_bias=False)
    return kfac_scores(factors, params, damping, damping_mode, normalize)
