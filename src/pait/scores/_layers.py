"""Taps on the layers that apply scored weights: each call's input and pre-activation output.

Shared by ``kfac`` (Kronecker factors) and ``fisher_diag`` (per-example gradients from layer
inputs and output gradients). A weight is *owned* by the module that applies it, with a role:
``linear`` (``nn.Linear``), ``conv`` (``nn.Conv2d``, timm's ``Conv2dSame`` included), or ``in`` /
``out`` for the two projections of ``nn.MultiheadAttention`` (seen through ``_attention.tapping``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch.nn.functional as F
from timm.layers import Conv2dSame
from timm.layers.padding import pad_same
from torch import Tensor, nn

from pait.scores._attention import tapping
from pait.scores.registry import Params

Owners = dict[str, tuple[nn.Module, str]]
OnLayer = Callable[[str, nn.Module, str, Tensor, Tensor], None]  # (key, module, role, input, output)


def layer_owners(model: nn.Module, params: Params) -> Owners:
    """For each key of ``params`` applied by a Linear, Conv2d or attention projection: (module, role).

    Keys of other parameters (norms, biases, Conv1d, ...) are left out; callers decide what to do with them.
    """
    owner: dict[int, tuple[nn.Module, str]] = {}
    for mod in model.modules():
        if isinstance(mod, nn.MultiheadAttention):
            if mod.in_proj_weight is not None:
                owner[id(mod.in_proj_weight)] = (mod, "in")
            owner[id(mod.out_proj.weight)] = (mod, "out")
    for mod in model.modules():
        if isinstance(mod, (nn.Linear, nn.Conv2d)) and id(mod.weight) not in owner:
            owner[id(mod.weight)] = (mod, "conv" if isinstance(mod, nn.Conv2d) else "linear")
    return {k: owner[id(p)] for k, p in params.items() if id(p) in owner}


@contextmanager
def tapping_layers(owners: Owners, on_layer: OnLayer) -> Iterator[None]:
    """Call ``on_layer(key, module, role, input, output)`` on every forward call of each owner."""
    taps: dict[nn.Module, dict[str, str]] = {}
    with ExitStack() as stack:
        for key, (mod, role) in owners.items():
            if role in ("linear", "conv"):
                def hook(m: nn.Module, inputs: tuple[Tensor, ...], output: Tensor, key: str = key, role: str = role) -> None:
                    on_layer(key, m, role, inputs[0], output)

                stack.callback(mod.register_forward_hook(hook).remove)
            else:
                taps.setdefault(mod, {})[role] = key

        def mha_tap(mha: nn.MultiheadAttention, keys: dict[str, str]) -> Callable[[str, Tensor, Tensor], None]:
            def tap(role: str, x: Tensor, s: Tensor) -> None:
                if role in keys:
                    on_layer(keys[role], mha, role, x, s)

            return tap

        stack.enter_context(tapping({m: mha_tap(m, k) for m, k in taps.items()}))
        yield


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
