"""Prunable structures of a stock module: conv output channels, ViT attention heads and MLP neurons.

Torch-Pruning's ``DependencyGraph`` finds which layers must lose the same channels together
(residuals, depthwise convs, BatchNorm, attention reshapes) and performs the physical surgery. This
module only decides *which* groups exist and records the surgery:

* conv nets: every group rooted at a conv/linear output, except the groups that feed the classifier
  (the pooled feature dimension the ridge heads read stays intact); unit = one channel;
* timm ViTs: per block, the attention heads (Torch-Pruning's group rooted at ``attn.proj``'s input,
  unit = ``head_dim`` channels) and the MLP hidden neurons (group rooted at ``mlp.fc1``); the embedding
  dimension (patch embedding, ``attn.proj`` / ``mlp.fc2`` outputs) is never pruned.

The surgery is recorded as each touched module's kept *original* indices per dimension, so the result
can be rebuilt on a fresh stock module with plain ``index_select`` (:mod:`pait.export.structured`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch_pruning as tp
from timm.layers import Attention
from torch import Tensor, nn

from pait.errors import UnsupportedLayerError

# Module types whose parameters the recorded surgery (and the loader) can slice.
SLICEABLE = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.LayerNorm)


@dataclass(frozen=True)
class Member:
    """Slices of one prunable weight that belong to a group: ``weight.index_select(dim, index)`` is owned
    by the group's root channels ``root_index`` (same length as ``index``)."""

    param: str
    dim: int
    index: Tensor
    root_index: Tensor


@dataclass
class Group:
    """One set of channels that are removed together, in ``units`` of ``unit`` consecutive root channels."""

    name: str
    kind: str  # "channels", "neurons" or "heads"
    root: nn.Module
    handler: Any  # Torch-Pruning pruning function of the root (output or input channels)
    width: int
    unit: int = 1
    members: list[Member] = field(default_factory=list)
    attention: Attention | None = None

    @property
    def units(self) -> int:
        return self.width // self.unit

    def channels(self, units: Sequence[int]) -> list[int]:
        """Root channel indices of ``units``."""
        return [u * self.unit + j for u in sorted(units) for j in range(self.unit)]


def is_vit(model: nn.Module) -> bool:
    """True for a model built of timm ``Attention`` blocks."""
    return any(isinstance(m, Attention) for m in model.modules())


def _check_supported(model: nn.Module) -> None:
    for name, mod in model.named_modules():
        if isinstance(mod, nn.MultiheadAttention):
            raise UnsupportedLayerError(
                f"structured pruning supports timm Attention, not nn.MultiheadAttention (layer {name!r})")
        if isinstance(mod, nn.Conv2d) and mod.groups > 1 and not (mod.groups == mod.in_channels == mod.out_channels):
            raise UnsupportedLayerError(
                f"structured pruning cannot cut grouped conv {name!r} (groups={mod.groups}); only dense or depthwise convs")


def build_graph(model: nn.Module, example: Tensor) -> tp.DependencyGraph:
    """Torch-Pruning's dependency graph of ``model`` traced on ``example``."""
    _check_supported(model)
    unwrapped = [(p, -1) for n, p in model.named_parameters(recurse=True)
                 if not any(p is q for m in model.modules() if isinstance(m, SLICEABLE) for q in m.parameters(recurse=False))]
    return tp.DependencyGraph().build_dependency(model, example_inputs=example, unwrapped_parameters=unwrapped)


def _members(graph: tp.DependencyGraph, group: Any, names: dict[int, str]) -> list[Member]:
    """The conv/linear weight slices of a full Torch-Pruning group, each (param, dim, index) once."""
    seen: dict[tuple[str, int, int], int] = {}
    for item in group:
        mod, idxs, roots = item.dep.target.module, item.idxs, item.root_idxs
        if not isinstance(mod, (nn.Conv2d, nn.Linear)) or id(mod) not in names:
            continue
        depthwise = isinstance(mod, nn.Conv2d) and mod.groups > 1
        dim = 0 if graph.is_out_channel_pruning_fn(item.dep.handler) or depthwise else 1
        for i, r in zip(idxs, roots):
            if r is not None:
                seen.setdefault((names[id(mod)] + ".weight", dim, int(i)), int(r))
    by_param: dict[tuple[str, int], tuple[list[int], list[int]]] = {}
    for (param, dim, i), r in seen.items():
        idx, roots = by_param.setdefault((param, dim), ([], []))
        idx.append(i)
        roots.append(r)
    return [Member(p, d, torch.tensor(i), torch.tensor(r)) for (p, d), (i, r) in by_param.items()]


def _feature_roots(graph: tp.DependencyGraph, model: nn.Module, head_prefixes: Sequence[str]) -> list[nn.Module]:
    """Modules whose output channels the classifier reads (the pooled feature dimension)."""
    heads = [m for n, m in model.named_modules() if n in head_prefixes and isinstance(m, nn.Linear)]
    if not heads:
        raise UnsupportedLayerError(
            "structured pruning of a conv net needs its classifier Linear (one of "
            f"{', '.join(head_prefixes) or 'no head prefix'}) to find the feature dimension to keep")
    group = graph.get_pruning_group(heads[0], tp.prune_linear_in_channels, [0])
    return [item.dep.target.module for item in group if graph.is_out_channel_pruning_fn(item.dep.handler)]


def find_groups(model: nn.Module, graph: tp.DependencyGraph, head_prefixes: Sequence[str] = ()) -> list[Group]:
    """The prunable groups of ``model`` (see the module docstring), with their member weight slices."""
    names = {id(m): n for n, m in model.named_modules()}
    heads = [m for n, m in model.named_modules() if any(n == p or n.startswith(p + ".") for p in head_prefixes)]
    groups: list[Group] = []
    if is_vit(model):
        attns = [m for m in model.modules() if isinstance(m, Attention)]
        ignored = heads + [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        for attn in attns:
            ignored += [attn.qkv, attn.proj]
            full = graph.get_pruning_group(attn.proj, tp.prune_linear_in_channels, list(range(attn.attn_dim)))
            groups.append(Group(names[id(attn)], "heads", attn.proj, tp.prune_linear_in_channels, attn.attn_dim,
                                attn.head_dim, _members(graph, full, names), attn))
        ignored += [m.fc2 for m in model.modules() if hasattr(m, "fc1") and hasattr(m, "fc2")]
        kind = "neurons"
    else:
        ignored = heads + _feature_roots(graph, model, head_prefixes)
        kind = "channels"
    for full in graph.get_all_groups(ignored_layers=ignored, root_module_types=[nn.Conv2d, nn.Linear]):
        root = full[0].dep.target.module
        groups.append(Group(names[id(root)], kind, root, full[0].dep.handler, len(full[0].idxs),
                            members=_members(graph, full, names)))
    touched = {m for g in groups for m in _touched_modules(graph, g)}
    bad = [f"{names.get(id(m), '?')} ({type(m).__name__})" for m in touched if not isinstance(m, SLICEABLE)]
    if bad:
        raise UnsupportedLayerError(f"structured pruning cannot cut layer type(s): {', '.join(sorted(bad))}")
    return groups


def _touched_modules(graph: tp.DependencyGraph, group: Group) -> list[nn.Module]:
    full = graph.get_pruning_group(group.root, group.handler, [0])
    return [item.dep.target.module for item in full
            if isinstance(item.dep.target.module, nn.Module) and any(True for _ in item.dep.target.module.parameters(recurse=False))]


def _size(mod: nn.Module, out: bool) -> int:
    if isinstance(mod, nn.Conv2d):
        return mod.out_channels if out else mod.in_channels
    if isinstance(mod, nn.Linear):
        return mod.out_features if out else mod.in_features
    if isinstance(mod, nn.BatchNorm2d):
        return mod.num_features
    if isinstance(mod, nn.LayerNorm):
        return mod.normalized_shape[0]
    raise UnsupportedLayerError(f"structured pruning cannot cut layer type {type(mod).__name__}")


def remove_units(model: nn.Module, graph: tp.DependencyGraph, groups: Sequence[Group],
                 removed: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Physically remove ``removed[i]`` (unit indices) from ``groups[i]``, in place, with Torch-Pruning.

    Returns the structure record: ``{"modules": {name: {"out"|"in": kept original indices}},
    "attention": {name: num_heads}}``.
    """
    names = {id(m): n for n, m in model.named_modules()}
    kept: dict[str, dict[str, list[int]]] = {}
    attention: dict[str, int] = {}
    for group, units in zip(groups, removed):
        if not units:
            continue
        if len(units) >= group.units:
            raise ValueError(f"removing all {group.units} units of {group.name} would make it vanish")
        pruning = graph.get_pruning_group(group.root, group.handler, group.channels(units))
        done: set[tuple[str, str]] = set()
        for item in pruning:
            mod = item.dep.target.module
            if not isinstance(mod, SLICEABLE) or id(mod) not in names:
                continue
            side = "out" if graph.is_out_channel_pruning_fn(item.dep.handler) else "in"
            if isinstance(mod, nn.Conv2d) and mod.groups > 1:
                side = "out"  # depthwise: input and output channels are the same channels
            key = (names[id(mod)], side)
            if key in done:
                continue
            done.add(key)
            current = kept.setdefault(key[0], {}).setdefault(side, list(range(_size(mod, side == "out"))))
            drop = {int(i) for i in item.idxs}
            current[:] = [k for pos, k in enumerate(current) if pos not in drop]
        pruning.prune()
        if group.attention is not None:
            attn = group.attention
            attn.num_heads -= len(units)
            attn.attn_dim = attn.num_heads * attn.head_dim
            attention[group.name] = attn.num_heads
    return {"modules": kept, "attention": attention}
