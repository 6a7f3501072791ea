"""Taps on the layers that apply prunable weights: each call's input and pre-activation output.

The one tapping mechanism of pait: ``kfac`` (Kronecker factors), ``fisher_diag`` (per-example gradients
from layer inputs and output gradients) and sequential OBS recovery (each layer's inputs, layer after
layer) all read layers through :func:`tapping_layers`. A weight is *owned* by the module that applies
it, with a role: ``linear`` (``nn.Linear``), ``conv`` (``nn.Conv2d``, timm's ``Conv2dSame`` included),
or ``in`` / ``out`` for the two projections of ``nn.MultiheadAttention`` (seen through
:func:`pait.layers.attention.tapping`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager

from torch import Tensor, nn

from pait.layers.attention import tapping

Params = Mapping[str, nn.Parameter]

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


def covering_owners(model: nn.Module, params: Params, who: str) -> Owners:
    """:func:`layer_owners` of every key of ``params``; a key no Linear, Conv2d or attention projection
    applies raises NotImplementedError naming it and ``who`` (the method that needs them all)."""
    owners = layer_owners(model, params)
    unknown = [k for k in params if k not in owners]
    if unknown:
        raise NotImplementedError(
            f"{who} covers Linear/Conv2d weights and MultiheadAttention projections only; not: " + ", ".join(unknown))
    return owners


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

