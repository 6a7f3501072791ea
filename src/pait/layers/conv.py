"""Conv inputs as the rows a conv's weight multiplies: padding as the conv pads, unfolded patches."""

from __future__ import annotations

import torch.nn.functional as F
from timm.layers import Conv2dSame
from timm.layers.padding import pad_same
from torch import Tensor, nn


def conv_padding(conv: nn.Conv2d, x: Tensor) -> tuple[Tensor, tuple[int, int] | int]:
    """``x`` padded as the conv pads it when that is not symmetric (timm's ``Conv2dSame``), and the
    symmetric zero padding left for the conv's kernel to apply."""
    if conv.padding_mode != "zeros":
        raise NotImplementedError(f"padding_mode {conv.padding_mode!r} is not supported")
    padding = conv.padding
    if isinstance(conv, Conv2dSame):
        x, padding = pad_same(x, conv.kernel_size, conv.stride, conv.dilation), 0
    elif padding == "valid":
        padding = 0
    elif padding == "same":
        if any(d * (k - 1) % 2 for k, d in zip(conv.kernel_size, conv.dilation)):
            raise NotImplementedError("asymmetric 'same' padding is not supported")
        padding = tuple(d * (k - 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation))
    return x, padding


def conv_unfold(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """``F.unfold`` of ``x`` (N, C, H, W) with the conv's own kernel, stride, dilation and padding:
    (N, C * kh * kw, positions), columns in the order of ``conv.weight`` (channel slowest)."""
    x, padding = conv_padding(conv, x)
    return F.unfold(x, conv.kernel_size, dilation=conv.dilation, padding=padding, stride=conv.stride)


def patch_rows(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """Rows of unfolded input patches, (N * positions, C * kh * kw), in the column order of ``conv.weight``."""
    patches = conv_unfold(conv, x)
    return patches.transpose(1, 2).reshape(-1, patches.shape[1])


def averaged_group_patches(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """:func:`patch_rows` with channel groups averaged first, (N * positions, in/groups * kh * kw)
    (curvlinops' choice for the K-FAC factor of a grouped conv)."""
    if conv.groups > 1:
        x = x.unflatten(1, (conv.groups, -1)).mean(1)
    return patch_rows(conv, x)


def grouped_patches(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """(G, N * positions, in/G * kh * kw): each group's unfolded input patches, in its weight's column order."""
    patches = conv_unfold(conv, x)
    n, cols, positions = patches.shape
    g = conv.groups
    return patches.view(n, g, cols // g, positions).permute(1, 0, 3, 2).reshape(g, n * positions, cols // g)


def patch_elements(conv: nn.Conv2d, x: Tensor) -> int:
    """Entries of the unfolded patches of ``x`` (N, C, H, W): columns x positions x N."""
    x, padding = conv_padding(conv, x)
    kh, kw = conv.kernel_size
    pads = (padding, padding) if isinstance(padding, int) else tuple(padding)
    positions = [(s + 2 * p - d * (k - 1) - 1) // st + 1 for s, p, d, k, st in
                 zip(x.shape[-2:], pads, conv.dilation, conv.kernel_size, conv.stride)]
    return x.shape[0] * x.shape[1] * kh * kw * positions[0] * positions[1]
