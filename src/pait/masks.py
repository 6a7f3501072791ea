"""Masks: dict parameter name -> bool tensor (True = kept); exact global top-k with deterministic ties."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

Mask = dict[str, Tensor]


def num_pruned(total: int, sparsity: float) -> int:
    """Exactly round(sparsity * total) weights are pruned (Python's round: half to even)."""
    check_sparsity(sparsity)
    return int(round(sparsity * total))


def check_sparsity(sparsity: float) -> None:
    """Raise a ValueError unless 0 <= sparsity < 1."""
    if not 0.0 <= float(sparsity) < 1.0:
        raise ValueError(f"sparsity must lie in [0, 1), got {sparsity}")


def global_mask(scores: Mapping[str, Tensor], sparsity: float) -> Mask:
    """Keep the highest-scoring weights across all tensors, pruning exactly round(sparsity * total).

    Ties are broken deterministically: among equal scores, the weight that comes earlier in the
    flattened concatenation (names in the order given, then row-major) is pruned first. NaN scores
    count as lowest.
    """
    names = list(scores)
    flat = torch.cat([scores[n].detach().reshape(-1).double().cpu() for n in names])
    flat = torch.nan_to_num(flat, nan=-torch.inf)
    k = num_pruned(flat.numel(), sparsity)
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    if k:
        order = torch.sort(flat, stable=True).indices  # stable: equal scores keep index order
        keep[order[:k]] = False
    mask, offset = {}, 0
    for n in names:
        size = scores[n].numel()
        mask[n] = keep[offset : offset + size].reshape(scores[n].shape)
        offset += size
    return mask


def mask_sparsity(mask: Mapping[str, Tensor]) -> float:
    """Fraction of pruned entries over all masked tensors."""
    total = sum(m.numel() for m in mask.values())
    kept = sum(int(m.sum()) for m in mask.values())
    return 1.0 - kept / total if total else 0.0


@torch.no_grad()
def apply_mask(params: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> None:
    """Zero the pruned entries of each masked parameter in place, with one fused multiply."""
    names = [n for n in mask if n in params]
    if names:
        targets = [params[n] for n in names]
        torch._foreach_mul_(targets, [mask[n].to(device=t.device, dtype=t.dtype) for n, t in zip(names, targets)])
