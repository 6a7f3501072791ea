"""A traceable forward for ``nn.MultiheadAttention`` that exposes its two projections.

``nn.MultiheadAttention`` calls ``F.multi_head_attention_forward`` with its weights directly, so no
module hook sees the inputs or outputs of ``in_proj`` and ``out_proj``. Written by hand because
neither torch nor curvlinops offers such taps: the same computation (self-attention, eval mode)
through ``F.linear`` and ``F.scaled_dot_product_attention``, calling ``tap(kind, inputs, outputs)``
for ``kind`` in ``("in", "out")``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Tap = Callable[[str, Tensor, Tensor], None]


def _additive_mask(mha: nn.MultiheadAttention, attn_mask: Tensor | None, key_padding_mask: Tensor | None,
                   batch: int, length: int, dtype: torch.dtype) -> Tensor | None:
    """MHA's masks (True / -inf = not attended) as one additive mask of shape (N, heads, T, T)."""
    total = None
    for mask, shape in ((attn_mask, (-1, mha.num_heads, length, length)), (key_padding_mask, (batch, 1, 1, length))):
        if mask is None:
            continue
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, -torch.inf)
        mask = mask.to(dtype).reshape(shape)
        total = mask if total is None else total + mask
    return total


def tapped_forward(mha: nn.MultiheadAttention, tap: Tap) -> Callable[..., tuple[Tensor, None]]:
    """A replacement ``forward`` for ``mha`` (self-attention only) that reports its projections to ``tap``."""

    def forward(query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, None]:
        if not (query is key and key is value) or mha.bias_k is not None or mha.add_zero_attn:
            raise NotImplementedError("only plain self-attention (query is key is value) is supported")
        x = query if mha.batch_first or query.dim() == 2 else query.transpose(0, 1)
        unbatched = x.dim() == 2
        x = x.unsqueeze(0) if unbatched else x
        n, t, e = x.shape
        qkv = F.linear(x, mha.in_proj_weight, mha.in_proj_bias)
        tap("in", x, qkv)
        q, k, v = (z.reshape(n, t, mha.num_heads, e // mha.num_heads).transpose(1, 2) for z in qkv.chunk(3, dim=-1))
        mask = _additive_mask(mha, attn_mask, key_padding_mask, n, t, x.dtype)
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal and mask is None)
        heads = heads.transpose(1, 2).reshape(n, t, e)
        out = F.linear(heads, mha.out_proj.weight, mha.out_proj.bias)
        tap("out", heads, out)
        out = out.squeeze(0) if unbatched else out
        return (out if mha.batch_first or unbatched else out.transpose(0, 1)), None

    return forward


@contextmanager
def tapping(modules: dict[nn.MultiheadAttention, Tap]) -> Iterator[None]:
    """Swap in ``tapped_forward`` on each module (instance attribute), removing it on exit."""
    for mha, tap in modules.items():
        mha.forward = tapped_forward(mha, tap)
    try:
        yield
    finally:
        for mha in modules:
            del mha.forward
