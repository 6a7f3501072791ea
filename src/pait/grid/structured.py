"""The cached stages of a channel-pruning unit (config ``structure: channels``).

Same flow as a weight-pruning unit (:mod:`pait.grid.stages`), with the structured path's functions
(:mod:`pait.prune.structured`): group scores of the unpruned encoder on the source task, cached once per
(source, score) and shared by every ratio and recovery; then, per unit, Torch-Pruning's surgery on a copy
of the encoder at the unit's sparsity read as the channel ratio (global, with the per-group floor), the
zero-shot evaluation of every task through the frozen ridge heads, the recovery (none / bn / sgd / sequential), and the
evaluation again. A unit writes ``metrics.json`` (as a weight-pruning unit), ``mask.safetensors`` (per
group, 1 = unit kept), ``channels.json`` (units and kept units per group, parameters and MACs before and
after) and, with ``save_weights``, the smaller module as :func:`pait.export.structured.save_structured`
writes it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from pait.encoders import Encoder
from pait.errors import ConfigError
from pait.export.structured import save_structured
from pait.grid.channel_axes import RatioAxis
from pait.grid.stages import Context, base_unit_key, recording_losses, score_options, scores_key, unit_metrics
from pait.heads import HeadedModel, SplitBatches
from pait.prune.structured.groups import Group, build_graph, find_groups, remove_units
from pait.prune.structured.prune import size, stock_spec
from pait.prune.recoveries import ChannelInputs, run_recovery
from pait.prune.structured.scores import group_score_revision, group_scores
from pait.prune.structured.selection import removed_fraction

CHANNELS = "channels"
CHANNELS_FILE = "channels.json"


def check_channel_pruning(encoder: Encoder) -> None:
    """Trace ``encoder`` as structured pruning will (on a blank image): a layer it cannot cut, or a conv
    net without a classifier to locate the feature dimension, is a ConfigError naming the encoder."""
    pixels = encoder.preprocess.input_size
    example = torch.zeros(1, 3, pixels, pixels, dtype=next(encoder.model.parameters()).dtype)
    try:
        find_groups(encoder.model, build_graph(encoder.model, example), encoder.head_prefixes)
    except ConfigError as err:
        raise ConfigError(f"structure: {CHANNELS} with encoder {encoder.name!r}: {err}") from None


def calibration_batches(ctx: Context, source: str) -> list[tuple[Tensor, Tensor]]:
    """The source's calibration split in normalised batches of ``score_batch_size``."""
    return list(SplitBatches(ctx.splits[source][0], ctx.normalize, ctx.config.score_batch_size, ctx.device))


def traced_groups(model: nn.Module, example: Tensor, encoder: Encoder) -> tuple[Any, list[Group]]:
    """Torch-Pruning's dependency graph of ``model`` (the encoder's module or a copy) and its prunable groups."""
    graph = build_graph(model, example)
    return graph, find_groups(model, graph, encoder.head_prefixes)


def group_scores_key(ctx: Context, source: str, score: str) -> dict[str, Any]:
    """Key of the group scores stage: the weight scores' key (shared by all sparsities; its options and a pait
    score's revision) plus the structure and the group score's revision (0 included)."""
    return {**scores_key(ctx, source, score, None), "structure": CHANNELS,
            "group_score_revision": group_score_revision(score)}


def group_scores_stage(ctx: Context, source: str, score: str) -> dict[str, Tensor]:
    """Per group name, the float64 score of each unit on the source task; computed once per (source, score)."""
    key = group_scores_key(ctx, source, score)
    with ctx.store.claim("scores", key) as todo:
        if todo:
            write_group_scores(ctx, key, source, score)
    return load_file(str(ctx.store.path("scores", key) / "scores.safetensors"))


def write_group_scores(ctx: Context, key: dict[str, Any], source: str, score: str) -> None:
    """Score every group of the unpruned encoder on the source's calibration batches; write the stage."""
    ctx.reset_weights()
    batches = calibration_batches(ctx, source)
    graph, groups = traced_groups(ctx.encoder.model, batches[0][0][:1], ctx.encoder)
    model = HeadedModel(ctx.encoder.model, ctx.encoder.feature_fn, ctx.heads[source])
    torch.manual_seed(ctx.seed)
    scores = group_scores(score, model, graph, groups, batches, ctx.encoder.prunable_parameters(),
                          score_options(ctx, score))
    ctx.reset_weights()  # a score may not leave the weights changed
    with ctx.store.writing("scores", key) as out:
        save_file({g.name: s.contiguous() for g, s in zip(groups, scores)}, str(out / "scores.safetensors"))


def channels_unit_key(ctx: Context, source: str, score: str, ratio: float, recovery: str,
                      axis: Any = RatioAxis()) -> dict[str, Any]:
    """Key of a channel-pruning unit: a unit's base key (with the structured recovery's options and revision)
    plus the structure (and ``round_to`` only when set, and what the ``axis`` adds (a target speed-up unit:
    its latency table's setting and machine), so keys of ratio runs without rounding, under the current
    schema, do not change)."""
    rounding = {"round_to": ctx.config.round_to} if ctx.config.round_to != 1 else {}
    return {**base_unit_key(ctx, source, score, ratio, recovery), "structure": CHANNELS, **rounding,
            "group_score_revision": group_score_revision(score), **axis.key(ctx)}


def channels_unit_stage(
    ctx: Context, source: str, score: str, ratio: float, recovery: str,
    on_epoch: Callable[[int, float], None] | None = None, axis: Any = RatioAxis(),
) -> dict[str, Any]:
    """Surgery on a copy of the encoder, zero-shot evaluation, recovery, evaluation again: the metrics of
    a weight-pruning unit (pruned and recovered (accuracy, loss) per task, train losses). ``axis``
    (:mod:`pait.grid.channel_axes`) reads ``ratio`` as a channel ratio or a target speed-up."""
    key = channels_unit_key(ctx, source, score, ratio, recovery, axis)
    with ctx.store.claim("unit", key) as todo:
        if todo:
            write_channels_unit(ctx, key, source, score, ratio, recovery, on_epoch, axis)
    return unit_metrics(ctx, key)


def write_channels_unit(
    ctx: Context, key: dict[str, Any], source: str, score: str, ratio: float, recovery: str,
    on_epoch: Callable[[int, float], None] | None, axis: Any = RatioAxis(),
) -> None:
    """Prune a copy of the encoder, evaluate, recover, evaluate, and write the unit's outputs."""
    scores = group_scores_stage(ctx, source, score)
    ctx.reset_weights()
    batches = calibration_batches(ctx, source)
    model = copy.deepcopy(ctx.encoder.model)
    graph, groups = traced_groups(model, batches[0][0][:1], ctx.encoder)
    if sorted(g.name for g in groups) != sorted(scores):
        raise RuntimeError(f"the cached group scores of {score} on {source} do not match the encoder's groups")
    pixels = ctx.encoder.preprocess.input_size
    before = size(model, pixels, ctx.device)  # (MACs, parameters)
    removed, plan = axis.removals(ctx, groups, [scores[g.name] for g in groups], ratio)
    structure = remove_units(model, graph, groups, removed)
    pruned_ctx = dataclasses.replace(ctx, encoder=dataclasses.replace(ctx.encoder, model=model))
    pruned = {task: pruned_ctx.evaluate(task) for task in ctx.splits}
    headed = HeadedModel(model, ctx.encoder.feature_fn, ctx.heads[source])
    start = time.perf_counter()
    losses, epoch_done = recording_losses(on_epoch)
    inputs = ChannelInputs(headed, {}, ctx.splits[source][0], ctx.normalize, ctx.device,
                           batch_size=ctx.config.score_batch_size, seed=ctx.seed, finetune=ctx.config.finetune,
                           autocast=ctx.autocast, on_epoch=epoch_done, dense=ctx.encoder.model, structure=structure)
    run_recovery(recovery, inputs, ctx.config.recovery_options.get(recovery), CHANNELS)
    seconds = time.perf_counter() - start
    recovered = pruned if recovery == "none" else {task: pruned_ctx.evaluate(task) for task in ctx.splits}
    after = size(model, pixels, ctx.device)
    record = {"removed_fraction": removed_fraction(groups, removed),
              "macs": [before[0], after[0]], "params": [before[1], after[1]],
              "groups": [{"name": g.name, "kind": g.kind, "units": g.units, "kept": g.units - len(r)}
                         for g, r in zip(groups, removed)]} | axis.record(ctx, model, plan)
    kept = {}
    for g, r in zip(groups, removed):
        kept[g.name] = torch.ones(g.units, dtype=torch.uint8)
        kept[g.name][list(r)] = 0
    with ctx.store.writing("unit", key) as out:
        save_file(kept, str(out / "mask.safetensors"))
        (out / "metrics.json").write_text(json.dumps({"pruned": pruned, "recovered": recovered, "train_loss": losses,
                                                    "recovery_seconds": seconds}))
        (out / CHANNELS_FILE).write_text(json.dumps(record, indent=1))
        if ctx.config.save_weights:
            save_structured(model, structure, out, *stock_spec(pruned_ctx.encoder))
