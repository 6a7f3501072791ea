"""The practitioner path: prune one backbone on one folder of images, recover, measure, report.

Straight line: load the encoder -> split the folder (held-out, seeded) -> ridge head on the
unpruned encoder's calibration features -> score on the calibration images -> global (or N:M) mask
-> recovery (none, SGD re-training, one-shot OBS, BN re-calibration, sequential OBS) -> accuracy on the held-out images before and
after, through the same frozen head and through a head refit on the pruned encoder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pait.config import EncoderConfig
from pait.device import resolve_device
from pait.encoders import Encoder
from pait.tasks import Task, TaskData
from pait.encoders import build_encoder as build_configured_encoder
from pait.export import storage_bytes
from pait.heads import HeadedModel, SplitBatches
from pait.masks import Mask, density_report, global_mask, mask_sparsity
from pait.prune.nm import nm_mask, parse_nm
from pait.prune.data import accuracy, fit_head, folder_splits
from pait.prune.options import PruneOptions
from pait.prune.recoveries import RecoveryInputs, run_recovery
from pait.scores import get_score, score_call_options, score_is_per_sparsity

CPU_NOTE = ("Unstructured masks save storage, not time: dense CPU (and GPU) kernels still multiply the zeros. "
            "Only N:M (2:4) masks run faster, with semi-structured sparse kernels on NVIDIA GPUs.")


def build_encoder(options: PruneOptions) -> Encoder:
    """The unpruned encoder, at the requested input size."""
    return build_configured_encoder(EncoderConfig(options.encoder, options.weights, options.input_size))


def make_mask(scores: dict[str, Tensor], sparsity: float | None, nm: str | None) -> tuple[Mask, list[str]]:
    """A global top-k mask at ``sparsity``, or an N:M mask; and the names left dense by N:M."""
    if nm is not None:
        return nm_mask(scores, *parse_nm(nm))
    return global_mask(scores, sparsity), []


def target_sparsity(options: PruneOptions) -> float:
    """The requested sparsity, or 1 - N/M for an N:M pattern."""
    if options.nm is not None:
        n, m = parse_nm(options.nm)
        return 1 - n / m
    return float(options.sparsity)


def _counts(encoder: Encoder) -> dict[str, int]:
    params = list(encoder.model.parameters())
    prunable = list(encoder.prunable_parameters().values())
    return {"total": sum(p.numel() for p in params), "nonzero": sum(int(torch.count_nonzero(p)) for p in params),
            "prunable": sum(p.numel() for p in prunable),
            "prunable_nonzero": sum(int(torch.count_nonzero(p)) for p in prunable)}


@dataclass
class SetUp:
    """What every practitioner path starts from: the unpruned encoder on its device, the folder's task and
    its calibration / held-out splits, the ridge head fit on the calibration features, accuracy before."""

    encoder: Encoder
    device: torch.device
    task: Task
    calib: TaskData
    evaluation: TaskData
    head: Tensor
    before: float


def set_up(options: PruneOptions, data: str | Path, on_step: Callable[[str], None]) -> SetUp:
    """Check the options, load the encoder, split and decode the folder, fit the head, measure before pruning."""
    options.validate()
    on_step("loading the encoder")
    encoder = build_encoder(options)
    device = resolve_device(options.device)
    encoder.model.to(device).eval()
    on_step("decoding the images")
    task, calib, evaluation = folder_splits(data, encoder, options.calib_per_class, options.eval_per_class, options.seed)
    on_step("fitting the ridge head")
    head = fit_head(encoder, calib, task.num_classes, options.batch_size, device)
    return SetUp(encoder, device, task, calib, evaluation, head, accuracy(encoder, head, evaluation, options.batch_size, device))


def prune(options: PruneOptions, data: str | Path, on_step: Callable[[str], None] = lambda _: None,
          on_epoch: Callable[[int, float], None] | None = None) -> tuple[Encoder, Mask, dict[str, Any]]:
    """Prune ``options.encoder`` on the folder ``data``; return the pruned encoder, its mask and the report."""
    s = set_up(options, data, on_step)
    encoder, device, task, calib, evaluation, head, before = s.encoder, s.device, s.task, s.calib, s.evaluation, s.head, s.before
    bs = options.batch_size
    counts_before = _counts(encoder)
    on_step(f"scoring ({options.score})")
    model = HeadedModel(encoder.model, encoder.feature_fn, head.to(device)).eval()
    batches = SplitBatches(calib, encoder.preprocess.normalize, bs, device)
    kwargs = score_call_options(options.score, options.score_options, options.seed)
    if score_is_per_sparsity(options.score):
        kwargs["sparsity"] = target_sparsity(options)
    scores = get_score(options.score)(model, batches, encoder.prunable_parameters(), **kwargs)
    mask, dense = make_mask(scores, options.sparsity, options.nm)
    on_step(f"recovery ({options.recovery})")
    inputs = RecoveryInputs(model, mask, calib, encoder.preprocess.normalize, device, batch_size=bs, seed=options.seed,
                            finetune=options.finetune_config(), on_epoch=on_epoch,
                            nm=parse_nm(options.nm) if options.nm is not None else None)
    mask = run_recovery(options.recovery, inputs, options.recovery_options())
    on_step("evaluating")
    after = accuracy(encoder, head, evaluation, bs, device)
    refit = accuracy(encoder, fit_head(encoder, calib, task.num_classes, bs, device), evaluation, bs, device)
    counts_after = _counts(encoder)
    report = {
        "options": dataclasses.asdict(options),
        "data": {"folder": str(data), "classes": list(task.class_names), "images": len(task.labels),
                 "calibration": len(calib), "evaluation": len(evaluation), "protocol": "heldout"},
        "accuracy": {"before": before, "after": after, "after_refit_head": refit},
        "parameters": {"before": counts_before, "after": counts_after},
        "sparsity": mask_sparsity(mask),
        "density": [dataclasses.asdict(r) for r in density_report(mask)],
        "nm_dense_layers": dense,
        "storage_bytes": storage_bytes(encoder.model.state_dict(), mask),
        "note": CPU_NOTE,
    }
    return encoder, mask, report
