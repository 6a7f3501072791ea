"""Group scores: pait's per-weight scores summed over each group's member weights, and Torch-Pruning's
own Taylor and Hessian importances as baselines.

Torch-Pruning has no importance built from a diagonal Fisher or K-FAC OBS saliency, so
:func:`summed_scores` is written here: a unit's score is the sum of the per-weight scores of every
conv/linear weight slice the unit owns (its output rows, its consumers' input columns, its depthwise
filter), each weight counted once. BatchNorm / LayerNorm parameters and biases are not scored (pait's
per-weight scores cover conv and linear weights only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import Tensor, nn

from pait.errors import ConfigError
from pait.heads import mse_to_one_hot
from pait.scores import get_score
from pait.scores.registry import Batches
from pait.prune.group_score_names import GROUP_SCORES
from pait.prune.structured.groups import Group

PAIT_SCORES = ("magnitude", "fisher_diag", "kfac")  # sums of pait's per-weight scores
TP_SCORES = tuple(s for s in GROUP_SCORES if s not in PAIT_SCORES)  # Torch-Pruning's own importances
# Raised whenever a change makes a group score other (cached stages are then not reused): Torch-Pruning's
# importances as pait computes them, and the sums of pait's per-weight scores (whose own revisions are
# ``register_score``'s). hessian 1: the mean of per-example g^2.
GROUP_SCORE_REVISIONS = {"hessian": 1}


def group_score_revision(name: str) -> int:
    """The revision of group score ``name`` as pait computes it (0: never changed since caching began)."""
    return GROUP_SCORE_REVISIONS.get(name, 0)


def summed_scores(groups: Sequence[Group], per_weight: Mapping[str, Tensor]) -> list[Tensor]:
    """Per group, the float64 score of each unit: the sum of ``per_weight`` over the unit's member weights."""
    out = []
    for group in groups:
        channels = torch.zeros(group.width, dtype=torch.float64)
        rows = {}
        for m in group.members:
            if m.param not in per_weight:
                continue
            s = per_weight[m.param].detach().double().cpu()
            channels.index_add_(0, m.root_index, s.index_select(m.dim, m.index).movedim(m.dim, 0).flatten(1).sum(1))
            if m.dim == 0:
                rows[m.param] = m
        units = channels.view(group.units, group.unit).sum(1)
        for m in group.members:  # a weight whose rows and columns both belong to the group (e.g. a conv on
            if m.dim == 1 and m.param in rows:  # a residual stream): entries in both were counted twice
                r = rows[m.param]
                s = per_weight[m.param].detach().double().cpu()
                both = s.flatten(2).sum(2) if s.dim() > 2 else s
                both = both.index_select(0, r.index).index_select(1, m.index)
                same = (r.root_index // group.unit)[:, None] == (m.root_index // group.unit)[None, :]
                units.index_add_(0, (r.root_index // group.unit)[:, None].expand_as(same)[same], -both[same])
        out.append(units)
    return out


def normalized_by_group_mean(scores: Sequence[Tensor]) -> list[Tensor]:
    """Each group's unit scores divided by their mean, as Torch-Pruning's ``normalizer="mean"`` does: a unit is
    then ranked globally by how it compares with the rest of its own group, so groups whose raw sums differ by
    orders of magnitude (wide against narrow layers) compete on equal terms. A group whose scores are all zero
    stays zero."""
    return [s / s.mean() if s.numel() and s.mean() != 0 else s.clone() for s in scores]


def _tp_importance(name: str, model: nn.Module, batches: Batches) -> tp.importance.Importance:
    """Torch-Pruning's importance ``name`` with its gradients accumulated on ``batches`` (MSE to one-hot)."""
    model.zero_grad(set_to_none=True)
    if name == "taylor":
        imp = tp.importance.GroupTaylorImportance()
        batches = list(batches)
        count = sum(len(x) for x, _ in batches)
        for images, labels in batches:  # gradient of the mean loss over all calibration examples
            (mse_to_one_hot(model(images), labels) * len(images) / count).backward()
        return imp
    for p, square in mean_squared_gradients(model, batches).items():
        p.grad = square.to(p.dtype)
    return tp.importance.GroupHessianImportance()


def mean_squared_gradients(model: nn.Module, batches: Batches) -> dict[nn.Parameter, Tensor]:
    """Per parameter of ``model`` that gets a gradient, the float64 mean over every example of ``batches``
    of its per-example squared gradient ``(dL(x, y)/dp)^2``: OBD's diagonal Hessian estimate, which
    ``GroupHessianImportance`` reads from ``p.grad`` (its score of a channel: ``sum w^2 * p.grad`` per
    layer, then its group reduction and normaliser).

    Computed here, not by the importance's ``accumulate_grad``: in Torch-Pruning 1.6.1 that checks the
    parameter's *name* in a dict keyed by the parameter itself, so every example overwrites the last
    and its count stays 1 (the importance was the last example's g^2, not the mean).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    sums: list[Tensor | None] = [None] * len(params)
    count = 0
    for images, labels in batches:  # per-example gradients, one backward each
        for x, y in zip(images, labels):
            grads = torch.autograd.grad(mse_to_one_hot(model(x[None]), y[None]), params, allow_unused=True)
            for i, g in enumerate(grads):
                if g is not None:
                    square, total = g.detach().double().square(), sums[i]
                    sums[i] = square if total is None else total.add_(square)
            count += 1
    if not count:
        raise ValueError("the calibration batches are empty")
    return {p: acc / count for p, acc in zip(params, sums) if acc is not None}  # unused ones: no grad, as before


def torch_pruning_scores(name: str, model: nn.Module, graph: tp.DependencyGraph, groups: Sequence[Group],
                         batches: Batches) -> list[Tensor]:
    """Per group, each unit's Torch-Pruning ``taylor`` or ``hessian`` importance (its defaults: mean over
    the group's layers, normalised by the group mean; ``hessian`` on pait's :func:`mean_squared_gradients`);
    a head's score is the sum over its channels."""
    imp = _tp_importance(name, model, batches)
    out = []
    with torch.no_grad():
        for group in groups:
            full = graph.get_pruning_group(group.root, group.handler, list(range(group.width)))
            channels = imp(full)
            channels = torch.zeros(group.width) if channels is None else channels.detach().double().cpu()
            out.append(channels.view(group.units, group.unit).sum(1))
    model.zero_grad(set_to_none=True)
    return out


def group_scores(name: str, model: nn.Module, graph: tp.DependencyGraph,
                 groups: Sequence[Group], batches: Batches, params: Mapping[str, nn.Parameter],
                 options: Mapping[str, Any] | None = None) -> list[Tensor]:
    """Unit scores of every group by ``name`` (:data:`GROUP_SCORES`); ``model`` = backbone + frozen head.

    ``params`` are the backbone's prunable weights keyed by backbone names; pait's scores run through
    :func:`pait.scores.get_score` on ``batches``, with keyword ``options`` (Torch-Pruning's take none).
    """
    if name in PAIT_SCORES:
        return summed_scores(groups, get_score(name)(model, batches, params, **(options or {})))
    if options:
        raise ConfigError(f"structured score {name!r} takes no options, got {', '.join(map(str, options))}")
    if name in TP_SCORES:
        return torch_pruning_scores(name, model, graph, groups, batches)
    raise KeyError(f"unknown structured score {name!r}; choose one of {', '.join(GROUP_SCORES)}")
