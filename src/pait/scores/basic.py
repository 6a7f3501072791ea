"""Data-free baselines: magnitude and random."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pait.scores.registry import Batches, Params, register_score
from pait.typed import Seed


@register_score("magnitude")
def magnitude(model: nn.Module, batches: Batches, params: Params) -> dict[str, Tensor]:
    """theta^2: the OBS saliency under an isotropic Hessian."""
    return {name: p.detach().pow(2) for name, p in params.items()}


@register_score("random", seeded=True)
def random(model: nn.Module, batches: Batches, params: Params, seed: Seed = 0) -> dict[str, Tensor]:
    """Uniform random scores from a seeded generator (independent of the weights)."""
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.rand(p.shape, generator=gen, dtype=torch.float64).to(p.device) for name, p in params.items()}
