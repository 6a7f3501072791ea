"""Tiny float64 models and data for the score oracle tests."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLASSES = 3


def batches(n: int = 6, batch: int = 3, shape: tuple[int, ...] = (3, 8, 8), seed: int = 0) -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=gen, dtype=torch.float64)
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    return list(zip(x.split(batch), y.split(batch)))


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 6), nn.Tanh(), nn.Linear(6, 5, bias=False), nn.ReLU(),
                         nn.Linear(5, CLASSES)).double().eval()


def cnn() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(5, CLASSES)).double()
    with torch.no_grad():  # non-trivial running statistics, used in eval mode
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.3, 0.3)
    return model.eval()


def attention(mha: nn.MultiheadAttention, x: Tensor, d_in: Tensor | None, d_out: Tensor | None) -> Tensor:
    """Self-attention of one example x (T, E) from its definition, with additive taps on the projections."""
    t, e = x.shape
    h = mha.num_heads
    s = x @ mha.in_proj_weight.T + mha.in_proj_bias
    s = s + d_in if d_in is not None else s
    q, k, v = (z.reshape(t, h, e // h).transpose(0, 1) for z in s.chunk(3, dim=-1))
    weights = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(e // h), dim=-1)
    heads = (weights @ v).transpose(0, 1).reshape(t, e)
    out = heads @ mha.out_proj.weight.T + mha.out_proj.bias
    return out + d_out if d_out is not None else out


class TinyViT(nn.Module):
    """Patch embedding, ``depth`` pre-norm blocks with nn.MultiheadAttention, mean pooling, linear head."""

    def __init__(self, dim: int = 8, depth: int = 2, heads: int = 2, batch_first: bool = True, img: int = 8) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.patch = nn.Conv2d(3, dim, 4, stride=4)
        self.pos = nn.Parameter(0.1 * torch.randn(1, (img // 4) ** 2, dim))
        self.norms1 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.attns = nn.ModuleList(nn.MultiheadAttention(dim, heads, batch_first=batch_first) for _ in range(depth))
        self.norms2 = nn.ModuleList(nn.LayerNorm(dim) for _ in range(depth))
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
                                  for _ in range(depth))
        self.head = nn.Linear(dim, CLASSES)

    def forward(self, images: Tensor, taps: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """With ``taps`` (one example only), attention runs from its definition with additive taps."""
        x = self.patch(images).flatten(2).transpose(1, 2) + self.pos
        for i, (n1, attn, n2, mlp) in enumerate(zip(self.norms1, self.attns, self.norms2, self.mlps)):
            h = n1(x)
            if taps is not None:
                a = attention(attn, h[0], *taps[i]).unsqueeze(0)
            elif self.batch_first:
                a = attn(h, h, h)[0]
            else:
                h = h.transpose(0, 1)
                a = attn(h, h, h, need_weights=False)[0].transpose(0, 1)
            x = x + a
            x = x + mlp(n2(x))
        return self.head(x.mean(1))


def vit(batch_first: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return TinyViT(batch_first=batch_first).double().eval()


def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    from pait.heads import mse_to_one_hot

    return mse_to_one_hot(model(x), y)


def conv_patches_by_loop(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """Rows (positions, in*kh*kw) of one example x (C, H, W), by explicit slicing."""
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    xp = F.pad(x, (pw, pw, ph, ph))
    rows = []
    for i in range(0, xp.shape[1] - kh + 1, sh):
        for j in range(0, xp.shape[2] - kw + 1, sw):
            rows.append(xp[:, i : i + kh, j : j + kw].reshape(-1))
    return torch.stack(rows)


def one_hot(y: Tensor) -> Tensor:
    return F.one_hot(y, CLASSES).double()


def mse(out: Tensor, y: Tensor) -> Tensor:
    from pait.heads import mse_to_one_hot

    return mse_to_one_hot(out, y)
