"""The structured practitioner path: prune whole channels / heads / neurons of one backbone on one folder.

Same straight line as :func:`pait.prune.prune` (encoder -> held-out split -> ridge head -> score ->
prune -> recovery -> accuracy before/after), but the pruning is physical: Torch-Pruning groups,
group scores, a global ratio with a per-group floor, surgery on the module.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from pait.encoders import Encoder
from pait.heads import HeadedModel, SplitBatches
from pait.prune.data import accuracy, fit_head
from pait.prune.run import set_up
from pait.prune.options import PruneOptions
from pait.prune.structured.groups import build_graph, find_groups, remove_units
from pait.prune.recoveries import ChannelInputs, run_recovery
from pait.prune.structured.report import NOTE
from pait.prune.structured.scores import group_scores
from pait.prune.structured.selection import choose_removals, removed_fraction


def size(model: nn.Module, input_size: int, device: torch.device) -> tuple[int, int]:
    """(MACs per image, parameters) by Torch-Pruning's counter."""
    macs, params = tp.utils.count_ops_and_params(model, torch.zeros(1, 3, input_size, input_size, device=device))
    return int(macs), int(params)


def prune_structured(options: PruneOptions, data: str | Path, on_step: Callable[[str], None] = lambda _: None,
                     on_epoch: Callable[[int, float], None] | None = None
                     ) -> tuple[Encoder, dict[str, Any], dict[str, Any]]:
    """Prune ``options.encoder`` structurally on the folder ``data``; return the pruned encoder, the
    structure record (for :func:`pait.export.structured.save_structured`) and the report."""
    s = set_up(options, data, on_step)
    encoder, device, task, calib, evaluation, head, before = s.encoder, s.device, s.task, s.calib, s.evaluation, s.head, s.before
    bs = options.batch_size
    pixels = encoder.preprocess.input_size
    macs_before, params_before = size(encoder.model, pixels, device)
    on_step("tracing the dependency graph")
    model = HeadedModel(encoder.model, encoder.feature_fn, head.to(device)).eval()
    batches = list(SplitBatches(calib, encoder.preprocess.normalize, bs, device))
    graph = build_graph(encoder.model, batches[0][0][:1])
    groups = find_groups(encoder.model, graph, encoder.head_prefixes)
    on_step(f"scoring groups ({options.score})")
    scores = group_scores(options.score, model, graph, groups, batches, encoder.prunable_parameters(),
                          options.score_options)
    removed = choose_removals(groups, scores, float(options.ratio), round_to=options.round_to)
    dense = copy.deepcopy(encoder.model) if options.recovery == "sequential" else None  # the refit's targets
    structure = remove_units(encoder.model, graph, groups, removed)
    on_step(f"recovery ({options.recovery})")
    inputs = ChannelInputs(model, {}, calib, encoder.preprocess.normalize, device, batch_size=bs, seed=options.seed,
                           finetune=options.finetune_config(), on_epoch=on_epoch, dense=dense, structure=structure)
    run_recovery(options.recovery, inputs, options.recovery_options(), "channels")
    del dense
    on_step("evaluating")
    after = accuracy(encoder, head, evaluation, bs, device)
    refit = accuracy(encoder, fit_head(encoder, calib, task.num_classes, bs, device), evaluation, bs, device)
    macs_after, params_after = size(encoder.model, pixels, device)
    report = {
        "options": dataclasses.asdict(options),
        "data": {"folder": str(data), "classes": list(task.class_names), "images": len(task.labels),
                 "calibration": len(calib), "evaluation": len(evaluation), "protocol": "heldout"},
        "accuracy": {"before": before, "after": after, "after_refit_head": refit},
        "size": {"params_before": params_before, "params_after": params_after,
                 "macs_before": macs_before, "macs_after": macs_after},
        "removed_fraction": removed_fraction(groups, removed),
        "groups": [{"name": g.name, "kind": g.kind, "units": g.units, "kept": g.units - len(r)}
                   for g, r in zip(groups, removed)],
        "note": NOTE,
    }
    return encoder, structure, report


def stock_spec(encoder: Encoder) -> tuple[str | None, dict[str, Any]]:
    """The timm architecture and ``create_model`` arguments that rebuild the encoder's stock module."""
    model = encoder.model
    cfg = getattr(model, "pretrained_cfg", None) or {}
    kwargs: dict[str, Any] = {"num_classes": getattr(model, "num_classes", 0)}
    embed = getattr(model, "patch_embed", None)
    if embed is not None and getattr(embed, "img_size", None) is not None:
        kwargs["img_size"] = int(embed.img_size[0])
    return cfg.get("architecture"), kwargs
