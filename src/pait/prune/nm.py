"""N:M semi-structured masks (e.g. 2:4) from any score.

Each weight is viewed as rows ``(out, in)`` (a conv weight as ``(out, in/groups*kh*kw)``, the
layout torch's semi-structured sparse kernels use for the flattened weight); in every group of
``m`` consecutive entries of a row, the ``n`` highest-scoring ones are kept (ties: the earlier one).
A weight whose row length is not divisible by ``m`` is left dense and reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from pait.errors import ConfigError
from pait.masks import Mask, parse_nm

__all__ = ["left_dense", "nm_mask", "parse_nm"]


def left_dense(shape: torch.Size | tuple[int, ...], m: int) -> bool:
    """Whether a weight of ``shape`` is left dense by an N:M mask: its rows' length is not divisible by ``m``."""
    return (math.prod(shape[1:]) if len(shape) > 1 else math.prod(shape)) % m != 0


def nm_mask(scores: Mapping[str, Tensor], n: int = 2, m: int = 4) -> tuple[Mask, list[str]]:
    """(mask keeping n of every m consecutive weights along each row's input dimension, names left dense)."""
    if not 0 < n < m:
        raise ConfigError(f"N:M pattern needs 0 < n < m, got {n}:{m}")
    mask, dense = {}, []
    for name, s in scores.items():
        rows = s.detach().reshape(s.shape[0], -1) if s.ndim > 1 else s.detach().reshape(1, -1)
        if left_dense(s.shape, m):
            mask[name] = torch.ones(s.shape, dtype=torch.bool, device=s.device)
            dense.append(name)
            continue
        groups = torch.nan_to_num(rows.double(), nan=-torch.inf).reshape(rows.shape[0], -1, m)
        order = torch.sort(groups, dim=-1, descending=True, stable=True).indices
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, order[..., :n], True)
        mask[name] = keep.reshape(s.shape)
    return mask, dense
