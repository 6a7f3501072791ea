"""Magnitude with per-layer densities set by a rule instead of one global threshold: the same sparsity in
every layer (``magnitude_uniform``) and LAMP's layer-adaptive normalisation (``lamp``).

Both rank weights within a tensor by theta^2 exactly as ``magnitude`` does, and both are ordinary scores
through the grid's global top-k (:func:`pait.masks.global_mask`): they differ from ``magnitude`` only in
how many weights each tensor keeps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pait.masks import uniform_pruned_counts
from pait.scores.registry import Batches, Params, register_score


def ascending_ranks(values: Tensor) -> Tensor:
    """0-based rank of each entry of ``values`` (flattened) in a stable ascending sort: ties rank the earlier
    entry lower, which is :func:`pait.masks.global_mask`'s rule (the earlier of equal scores is pruned first)."""
    order = torch.sort(values.reshape(-1), stable=True).indices
    ranks = torch.empty_like(order)
    ranks[order] = torch.arange(order.numel())
    return ranks


@register_score("magnitude_uniform", per_sparsity=True)
def magnitude_uniform(model: nn.Module, batches: Batches, params: Params, sparsity: float = 0.0) -> dict[str, Tensor]:
    """theta^2's order within each tensor, at one sparsity q in every tensor: with r the 0-based ascending
    rank of theta^2 in a tensor of n weights of which c are pruned (:func:`pait.masks.uniform_pruned_counts`:
    floor or ceil of q * n, summing to the grid's exact global count), the score is (r + 1) / (n + 1), minus
    1 for the c lowest ranks. Exactly those c weights score below 0, so the global top-k at sparsity q prunes
    them and nothing else; a score per sparsity, since the counts depend on q."""
    pruned = uniform_pruned_counts({name: p.numel() for name, p in params.items()}, sparsity)
    scores = {}
    for name, p in params.items():
        ranks = ascending_ranks(p.detach().double().cpu().pow(2))
        score = (ranks + 1).double() / (p.numel() + 1) - (ranks < pruned[name]).double()
        scores[name] = score.reshape(p.shape).to(p.device)
    return scores


@register_score("lamp")
def lamp(model: nn.Module, batches: Batches, params: Params) -> dict[str, Tensor]:
    """LAMP (Lee et al., ICLR 2021): in each tensor, with the weights sorted by theta^2 ascending (stable),
    score_u = theta_u^2 / sum_{v >= u} theta_v^2 (1 for the largest weight); 0 for a weight of an all-zero tensor
    (0/0). The suffix sums are a reversed cumulative sum in float64."""
    scores = {}
    for name, p in params.items():
        w2 = p.detach().double().cpu().pow(2).reshape(-1)
        order = torch.sort(w2, stable=True).indices
        sorted_w2 = w2[order]
        suffix = sorted_w2.flip(0).cumsum(0).flip(0)
        normalised = torch.where(suffix > 0, sorted_w2 / suffix.clamp_min(torch.finfo(torch.float64).tiny),
                                 torch.zeros_like(suffix))
        score = torch.empty_like(w2)
        score[order] = normalised
        scores[name] = score.reshape(p.shape).to(p.device)
    return scores
