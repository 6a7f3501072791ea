r"""How much of the ``kfac`` score is set by the data and how much by the damping, per layer.

For a factor ``F = U diag(lambda) U^T`` damped by ``delta`` (see ``pait.layers.inverses.damping_amount``),

    [(F + delta I)^-1]_kk = sum_j U_kj^2 / (lambda_j + delta).

The *damping share* of that entry is its elasticity with respect to the damping,

    e_k = -d log [(F + delta I)^-1]_kk / d log delta = delta [(F + delta I)^-2]_kk / [(F + delta I)^-1]_kk
        = sum_j w_kj * delta / (lambda_j + delta),   w_kj = (U_kj^2 / (lambda_j + delta)) / [(F + delta I)^-1]_kk,

the share-weighted mean of ``delta / (lambda_j + delta)`` over the eigen-directions that make up the
entry: 0 when the entry does not depend on the damping, 1 when it is ``(1 - 0) / delta``, i.e. set by
the damping alone (a direction in the factor's null space). Since the score is
``theta^2 / ([A^-1]_ii [B^-1]_kk)``, its log-derivative with respect to ``log delta`` (both factors
damped by the same relative ``damping``) is ``e^A_i + e^B_k``: a layer whose mean ``e^A + e^B`` is
near 1 or 2 moves as a block in the global ranking as the damping changes, so its share of the mask is
set by the damping, not by the data.

Written by hand: curvlinops has no per-entry damping diagnostics.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from pait.layers.inverses import damping_amount
from pait.scores.kfac import Factors

Spectra = dict[str, tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]]


@dataclass(frozen=True)
class FactorDiagnostics:
    """Spectrum facts of one damped factor (float64)."""

    size: int
    rank: int  # eigenvalues above rtol * lambda_max
    rtol: float
    eig_max: float
    eig_min: float
    condition: float  # lambda_max / lambda_min (inf when lambda_min <= 0)
    condition_on_range: float  # lambda_max / smallest eigenvalue counted in the rank
    damping: float  # the multiple of I added
    damped_condition: float  # (lambda_max + delta) / (lambda_min + delta)
    below_damping: float  # fraction of eigenvalues < delta
    damping_share: float  # mean over entries k of e_k (module docstring)

    @property
    def noise_floor(self) -> float:
        """rtol * lambda_max: eigenvalues below it are round-off, so a damping below it does not set the inverse."""
        return self.rtol * self.eig_max


@dataclass(frozen=True)
class LayerDiagnostics:
    """One layer: its factors ``A`` (inputs) and ``B`` (outputs), and the score's damping elasticity."""

    name: str
    a: FactorDiagnostics
    b: FactorDiagnostics

    @property
    def score_damping_elasticity(self) -> float:
        """Mean over the layer's weights of d log score / d log damping = mean(e^A) + mean(e^B), in [0, 2]."""
        return self.a.damping_share + self.b.damping_share

    def as_dict(self) -> dict:
        return {"name": self.name, "A": asdict(self.a), "B": asdict(self.b),
                "score_damping_elasticity": self.score_damping_elasticity}


def default_rtol(factor: Tensor) -> float:
    """The numerical-rank tolerance: size times the machine epsilon of the dtype the factor was computed in."""
    return factor.shape[0] * torch.finfo(factor.dtype).eps


def entry_damping_shares(factor: Tensor, delta: float | Tensor) -> Tensor:
    """``e_k`` for every diagonal entry of ``(F + delta I)^-1`` (module docstring), float64."""
    lam, u = torch.linalg.eigh(factor.double())
    return _shares(lam, u, delta)


def _shares(lam: Tensor, u: Tensor, delta: float | Tensor) -> Tensor:
    inv = 1.0 / (lam.clamp_min(0.0) + delta)  # clamp: round-off negatives of a PSD factor
    u2 = u.pow(2)
    return delta * (u2 @ inv.pow(2)) / (u2 @ inv)


def spectra(factors: Factors) -> Spectra:
    """``torch.linalg.eigh`` (float64) of both factors of every layer, to reuse across dampings."""
    return {k: (torch.linalg.eigh(a.double()), torch.linalg.eigh(b.double())) for k, (a, b) in factors.items()}


def factor_diagnostics(
    factor: Tensor, damping: float, mode: str = "relative", rtol: float | None = None,
    spectrum: tuple[Tensor, Tensor] | None = None,
) -> FactorDiagnostics:
    """Rank, condition numbers, damping added and damping share of one factor; ``spectrum`` is its
    ``torch.linalg.eigh`` in float64 (computed when not given)."""
    rtol = default_rtol(factor) if rtol is None else rtol
    f = factor.double()
    delta = float(damping_amount(f, damping, mode))
    lam, u = torch.linalg.eigh(f) if spectrum is None else spectrum
    top, low = float(lam[-1]), float(lam[0])
    kept = lam[lam > rtol * top]
    return FactorDiagnostics(
        size=f.shape[0], rank=int(kept.numel()), rtol=rtol, eig_max=top, eig_min=low,
        condition=top / low if low > 0 else math.inf,
        condition_on_range=top / float(kept[0]) if kept.numel() else math.inf,
        damping=delta, damped_condition=(top + delta) / (max(low, 0.0) + delta),
        below_damping=float((lam < delta).double().mean()),
        damping_share=float(_shares(lam, u, delta).mean()),
    )


def kfac_diagnostics(
    factors: Factors, damping: float = 1e-3, mode: str = "relative", rtol: float | None = None,
    spectra: Spectra | None = None,
) -> list[LayerDiagnostics]:
    """Per layer of ``kfac_factors(..., include_bias=False)``: diagnostics of ``A`` and of ``B``;
    ``spectra`` (from :func:`spectra`) saves the eigendecompositions when several dampings are examined."""
    layers = []
    for name, (a, b) in factors.items():
        sa, sb = spectra[name] if spectra is not None else (None, None)
        layers.append(LayerDiagnostics(name, factor_diagnostics(a, damping, mode, rtol, sa),
                                       factor_diagnostics(b, damping, mode, rtol, sb)))
    return layers
