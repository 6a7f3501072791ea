"""The cached stages of one experiment unit.

data (decoded uint8 splits per suite x preprocessing) -> heads (ridge head per task on the unpruned
encoder's calibration features, and unpruned evaluation) -> scores (per encoder x source x score) ->
unit (mask at one sparsity, zero-shot evaluation of every task, masked re-training on the source,
evaluation again). Each stage is keyed by the hash of everything it depends on, the state of the files
it reads included: the data stage by the content of the suite's files (``tasks_fingerprint``), the
heads stage (and through it every later one) by the content hash of the encoder's weights file, or of
the built weights themselves when no file holds them (a random initialisation).
Each stage is computed under its lock in the store (``StageStore.claim``), so runs sharing a store
compute it once.

Keys under schema 4 (:data:`pait.cache.SCHEMA_VERSION`): the calibration batch size is
``score_batch_size`` in the scores and unit keys alike (the scores key called it ``batch_size``); a unit
key holds :func:`pait.prune.recoveries.recovery_key` (``recovery``, ``recovery_options`` with every
default, damping included, and ``recovery_revision``, 0 included) so that a change of a recovery's code
or constants gives new units.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from safetensors.torch import load_file, save_file
from torch import Tensor

from pait.cache import StageStore, config_key
from pait.config import EncoderConfig, ExperimentConfig, SuiteConfig
from pait.device import autocast_dtype, resolve_device
from pait.encoders import RANDOM, Encoder, build_encoder
from pait.errors import DataError
from pait.fingerprints import ContentDigests, state_sha256
from pait.heads import HeadedModel, SplitBatches, evaluate_head, extract_features, fit_ridge
from pait.train.finetune import MaskHolder
from pait.masks import global_mask, layer_counts, mask_with_counts, parse_nm
from pait.prune.nm import nm_mask
from pait.prune.recoveries import RecoveryInputs, recovery_key, run_recovery
from pait.train.packed import finetune_many, load_copy
from pait.scores import SCORES, get_score, score_call_options, score_is_per_sparsity, score_revision
from pait.tasks import SKIP_BAD, Task, TaskData, decode, load_suite, split_indices
from pait.tasks.fingerprint import tasks_fingerprint

Splits = dict[str, tuple[TaskData, TaskData]]  # task -> (calibration, evaluation)
MEMO = "fingerprints.json"  # in the store: the content hashes of input files, by (path, size, mtime, ctime)


@dataclass
class Context:
    """What the stages of one (encoder, seed) share: config, store, device, encoder, data and heads."""

    config: ExperimentConfig
    encoder_config: EncoderConfig
    seed: int
    store: StageStore
    device: torch.device
    encoder: Encoder
    theta0: dict[str, Tensor]
    splits: Splits
    heads: dict[str, Tensor]
    heads_key: dict[str, Any]
    unpruned: dict[str, tuple[float, float]]

    def normalize(self, pixels: Tensor) -> Tensor:
        return self.encoder.preprocess.normalize(pixels)

    @property
    def autocast(self) -> torch.dtype | None:
        return autocast_dtype(self.config.precision, self.device)

    def features(self, images: Tensor) -> Tensor:
        dtype = self.autocast
        with torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None):
            return self.encoder.features(images)

    def evaluate(self, task: str) -> tuple[float, float]:
        """(accuracy, loss) of the encoder's current weights on ``task``'s evaluation split."""
        feats = extract_features(self.features, self.splits[task][1], self.normalize, self.config.eval_batch_size, self.device)
        return evaluate_head(feats, self.splits[task][1].labels, self.heads[task])

    def reset_weights(self) -> None:
        self.encoder.model.load_state_dict(self.theta0)


def load_tasks(suite: SuiteConfig) -> list[Task]:
    """The suite's tasks (file lists and labels, nothing decoded); ``skip_bad_images`` is for decoding."""
    return load_suite(suite.name, **suite.options)


def task_splits(tasks: list[Task], suite: SuiteConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """(calibration, evaluation) indices of every task, all checked before anything is decoded."""
    splits = []
    for task in tasks:
        try:
            splits.append(split_indices(task.labels, suite.protocol, suite.calib_per_class, suite.eval_per_class,
                                        suite.split_seed, task.class_names, task.styles, task.style_names,
                                        task.style_designs))
        except DataError as err:
            raise DataError(f"task {task.name!r}: {err}") from None
    return splits


def data_stage(
    store: StageStore, suite: SuiteConfig, encoder: Encoder, tasks: list[Task] | None = None,
    progress: Progress | None = None,
) -> tuple[Splits, dict[str, Any]]:
    """Decode every task's calibration and evaluation images once per (suite, preprocessing).

    ``tasks`` (default: loaded from the suite) saves listing the files twice; ``progress`` shows a bar.
    Under the paper protocol both splits are the same images, stored once. The key holds the content
    hashes of the files the tasks read, so changed images or label files are decoded again; new hashes
    enter the store's memo once the stage is there (a run failing on a bad image leaves the store as it was).
    """
    tasks = load_tasks(suite) if tasks is None else tasks
    digests = ContentDigests(store.root / MEMO, deferred=True)  # remembered once the stage is there
    key = {"suite": suite, "preprocess": dataclasses.asdict(encoder.preprocess), "inputs": tasks_fingerprint(tasks, digests)}
    splits = _data_stage(store, suite, tasks, key, encoder, progress)
    digests.flush()
    return splits, key


def _data_stage(
    store: StageStore, suite: SuiteConfig, tasks: list[Task], key: dict[str, Any], encoder: Encoder,
    progress: Progress | None,
) -> Splits:
    """The decoded splits of the data stage ``key``: read if it is done, else decoded and written."""
    if store.done("data", key):
        return read_splits(store, key)
    indices = task_splits(tasks, suite)  # too few images fails here, before the store is touched
    with store.claim("data", key) as todo:
        if not todo:
            return read_splits(store, key)
        same = suite.protocol == "paper"
        total = sum(len(c) + (0 if same else len(e)) for c, e in indices)
        bar = progress.add_task("decoding images", total=total) if progress is not None else None
        advance = (lambda: progress.advance(bar)) if progress is not None else None
        skip = suite.options.get(SKIP_BAD, False) is True  # checked to be a bool by validate_config
        with store.writing("data", key) as out:
            for i, (task, (calib_idx, eval_idx)) in enumerate(zip(tasks, indices)):
                calib = decode(task, calib_idx, encoder.preprocess.pixels, skip, on_image=advance)
                tensors = {"calib_pixels": calib.pixels, "calib_labels": calib.labels}
                if not same:
                    evaluation = decode(task, eval_idx, encoder.preprocess.pixels, skip, on_image=advance)
                    tensors |= {"eval_pixels": evaluation.pixels, "eval_labels": evaluation.labels}
                save_file(tensors, str(out / f"task{i:03d}.safetensors"))
            (out / "tasks.json").write_text(json.dumps([{"name": t.name, "classes": list(t.class_names)} for t in tasks]))
        if progress is not None:
            progress.update(bar, visible=False)
    return read_splits(store, key)


def read_splits(store: StageStore, key: dict[str, Any]) -> Splits:
    """The decoded splits of a finished data stage."""
    path = store.path("data", key)
    splits = {}
    for i, entry in enumerate(json.loads((path / "tasks.json").read_text())):
        t = load_file(str(path / f"task{i:03d}.safetensors"))
        calib = TaskData(t["calib_pixels"], t["calib_labels"])
        evaluation = TaskData(t["eval_pixels"], t["eval_labels"]) if "eval_pixels" in t else calib
        splits[entry["name"]] = (calib, evaluation)
    return splits


def to_device(splits: Splits, device: torch.device) -> Splits:
    """The splits moved to ``device`` once (a split shared by calibration and evaluation moves once)."""
    moved: dict[int, TaskData] = {}

    def move(data: TaskData) -> TaskData:
        if id(data) not in moved:
            moved[id(data)] = data.to(device)
        return moved[id(data)]

    return {name: (move(calib), move(evaluation)) for name, (calib, evaluation) in splits.items()}


def prepare(
    config: ExperimentConfig, encoder_config: EncoderConfig, store: StageStore, seed: int = 0,
    tasks: list[Task] | None = None, progress: Progress | None = None,
) -> Context:
    """Load the encoder, its decoded data (cached; kept on the GPU when one is used) and its ridge heads (cached).

    ``seed`` is the replicate: the calibration/evaluation split uses ``suite.split_seed + seed``.
    """
    device = resolve_device(config.device)
    encoder = build_encoder(encoder_config)
    encoder.model.to(device).eval()
    suite = dataclasses.replace(config.suite, split_seed=config.suite.split_seed + seed)
    splits, data_key = data_stage(store, suite, encoder, tasks, progress)
    if device.type == "cuda":
        splits = to_device(splits, device)
    theta0 = {k: v.detach().clone() for k, v in encoder.model.state_dict().items()}
    heads_key = {"encoder": encoder_config, "weights": weights_fingerprint(store, encoder_config, encoder, theta0),
                 "data": config_key(data_key), "alpha": config.ridge_alpha, "precision": config.precision}
    ctx = Context(config, encoder_config, seed, store, device, encoder, theta0, splits, {}, heads_key, {})
    with store.claim("heads", heads_key) as todo:
        if todo:
            write_heads(ctx)
    path = store.path("heads", heads_key)
    ctx.heads = {k: v.to(device) for k, v in load_file(str(path / "heads.safetensors")).items()}
    ctx.unpruned = {k: tuple(v) for k, v in json.loads((path / "unpruned.json").read_text()).items()}
    return ctx


def score_options(ctx: Context, score: str) -> dict[str, Any]:
    """The options ``score`` is called with in this grid (besides ``sparsity``): the config's
    ``score_options[score]``, and the config's seed for seeded scores unless those set one. Torch-Pruning's
    importances (``structure: channels``), which are not pait scores, take none."""
    if score not in SCORES:
        return {}
    return score_call_options(score, ctx.config.score_options.get(score, {}), ctx.seed)


def write_heads(ctx: Context) -> None:
    """Fit the ridge head of every task on its calibration features; evaluate the unpruned encoder."""
    config = ctx.config
    with ctx.store.writing("heads", ctx.heads_key) as out:
        heads = {}
        for task, (calib, _) in ctx.splits.items():
            feats = extract_features(ctx.features, calib, ctx.normalize, config.eval_batch_size, ctx.device)
            labels = calib.labels.cpu()
            head = fit_ridge(feats.double(), labels, int(labels.max()) + 1, config.ridge_alpha)
            heads[task] = head.float().contiguous()
        save_file(heads, str(out / "heads.safetensors"))
        ctx.heads = {k: v.to(ctx.device) for k, v in heads.items()}
        unpruned = {task: ctx.evaluate(task) for task in ctx.splits}
        (out / "unpruned.json").write_text(json.dumps(unpruned))


def weights_fingerprint(store: StageStore, encoder_config: EncoderConfig, encoder: Encoder,
                        state: dict[str, Tensor]) -> list[str]:
    """Content hashes (sha256) of the weights files the encoder read: the configured one, and the one it
    reports in ``info["weights"]`` (e.g. weights shipped in a package), remembered in the store's memo. When
    it read none (``weights: random``, an encoder built in code), the hash of its built ``state`` instead
    (``state:<sha256>``): the key then names the very network the heads were fitted on, so a process or
    a machine whose build differs gets its own key instead of another's heads."""
    named = (encoder_config.weights, encoder.info.get("weights"))
    files = {Path(p).resolve() for p in named if p and str(p) != RANDOM and Path(p).is_file()}
    if not files:
        return [f"state:{state_sha256(state)}"]
    return sorted(set(ContentDigests(store.root / MEMO).many(sorted(files))))


def revision(score: str) -> dict[str, int]:
    """``{"revision": r}`` for a score whose definition changed since caching began, else nothing (so the keys
    of every other score stay as they were)."""
    r = score_revision(score)
    return {"revision": r} if r else {}


def scores_key(ctx: Context, source: str, score: str, sparsity: float | None) -> dict[str, Any]:
    """Key of the scores stage; ``sparsity`` is None for scores shared by every sparsity."""
    return {"heads": config_key(ctx.heads_key), "source": source, "score": score, "sparsity": sparsity,
            "options": score_options(ctx, score), "score_batch_size": ctx.config.score_batch_size, "seed": ctx.seed,
            **revision(score)}


def scores_stage(ctx: Context, source: str, score: str, sparsity: float | None) -> dict[str, Tensor]:
    """Scores of the prunable weights on the source task, computed once and reused by every sparsity."""
    key = scores_key(ctx, source, score, sparsity)
    with ctx.store.claim("scores", key) as todo:
        if todo:
            write_scores(ctx, key, source, score, sparsity)
    return load_file(str(ctx.store.path("scores", key) / "scores.safetensors"))


def write_scores(ctx: Context, key: dict[str, Any], source: str, score: str, sparsity: float | None) -> None:
    """Compute the scores on the source task's calibration batches and write the stage."""
    ctx.reset_weights()
    model = HeadedModel(ctx.encoder.model, ctx.encoder.feature_fn, ctx.heads[source])
    options = score_options(ctx, score) | ({"sparsity": sparsity} if sparsity is not None else {})
    batches = SplitBatches(ctx.splits[source][0], ctx.normalize, ctx.config.score_batch_size, ctx.device)
    torch.manual_seed(ctx.seed)
    scores = get_score(score)(model, batches, ctx.encoder.prunable_parameters(), **options)
    ctx.reset_weights()  # a score may not leave the weights changed
    with ctx.store.writing("scores", key) as out:
        save_file({k: v.detach().float().cpu().contiguous() for k, v in scores.items()}, str(out / "scores.safetensors"))


def base_unit_key(ctx: Context, source: str, score: str, sparsity: float, recovery: str = "sgd",
                  densities_from: str | None = None) -> dict[str, Any]:
    """What every unit's key holds: the score's, the recovery's (:func:`pait.prune.recoveries.recovery_key`:
    name, options with their defaults, revision), for ``sgd`` only the re-training schedule, and the mask
    options only when a unit has one (the config's N:M pattern, or the score whose per-layer densities it
    takes, with that score's scores key), so keys of plain units hold none."""
    recovered = recovery_key(recovery, ctx.config.recovery_options.get(recovery), ctx.config.structure)
    return {"heads": config_key(ctx.heads_key), "source": source, "score": score, "sparsity": sparsity,
            "score_options": score_options(ctx, score), "finetune": ctx.config.finetune if recovery == "sgd" else None,
            "score_batch_size": ctx.config.score_batch_size, "seed": ctx.seed, **revision(score), **recovered,
            **mask_key(ctx, source, sparsity, densities_from)}


def mask_key(ctx: Context, source: str, sparsity: float, densities_from: str | None) -> dict[str, Any]:
    """A unit's ``mask_options`` (the config's ``nm``; its own ``densities_from``, with the key of the scores
    stage whose mask sets the per-layer densities); {} for a plain global mask."""
    nm = {"nm": ctx.config.mask_options["nm"]} if "nm" in ctx.config.mask_options else {}
    if densities_from is None:
        return {"mask_options": nm} if nm else {}
    per_sparsity = sparsity if score_is_per_sparsity(densities_from) else None
    return {"mask_options": {**nm, "densities_from": densities_from},
            "densities_scores": config_key(scores_key(ctx, source, densities_from, per_sparsity))}


def unit_key(ctx: Context, source: str, score: str, sparsity: float, recovery: str = "sgd",
             densities_from: str | None = None) -> dict[str, Any]:
    """Key of a weight-pruning unit: :func:`base_unit_key`."""
    return base_unit_key(ctx, source, score, sparsity, recovery, densities_from)


def unit_stage(
    ctx: Context, source: str, score: str, sparsity: float, recovery: str = "sgd",
    on_epoch: Callable[[int, float], None] | None = None, densities_from: str | None = None,
) -> dict[str, Any]:
    """Mask, zero-shot evaluation, recovery on the source task, evaluation again: metrics per stage and task."""
    key = unit_key(ctx, source, score, sparsity, recovery, densities_from)
    with ctx.store.claim("unit", key) as todo:
        if todo:
            mask = unit_mask(ctx, source, score, sparsity, densities_from)
            pruned = evaluate_pruned(ctx, MaskHolder(ctx.encoder.prunable_parameters(), mask))
            start = time.perf_counter()
            losses, mask = recover_unit(ctx, source, mask, recovery, on_epoch)
            write_unit(ctx, key, mask, pruned, losses, recovered=pruned if recovery == "none" else None,
                       recovery_seconds=time.perf_counter() - start)
    return unit_metrics(ctx, key)


def recording_losses(on_epoch: Callable[[int, float], None] | None = None,
                     ) -> tuple[list[float], Callable[[int, float], None]]:
    """A list and an ``on_epoch`` callback that appends each epoch's loss to it, then calls ``on_epoch``."""
    losses: list[float] = []

    def epoch_done(epoch: int, loss: float) -> None:
        losses.append(loss)
        if on_epoch is not None:
            on_epoch(epoch, loss)

    return losses, epoch_done


def recover_unit(
    ctx: Context, source: str, mask: dict[str, Tensor], recovery: str,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[list[float], dict[str, Tensor]]:
    """Reset the encoder to its unpruned weights and run the registered ``recovery`` on the source's
    calibration split with this grid's options. Returns the re-training epoch losses (sgd; else []) and the
    mask now applied (``sequential-adaptive`` chooses its own)."""
    losses, epoch_done = recording_losses(on_epoch)
    ctx.reset_weights()
    model = HeadedModel(ctx.encoder.model, ctx.encoder.feature_fn, ctx.heads[source])
    inputs = RecoveryInputs(model, mask, ctx.splits[source][0], ctx.normalize, ctx.device,
                            batch_size=ctx.config.score_batch_size, seed=ctx.seed, finetune=ctx.config.finetune,
                            autocast=ctx.autocast, on_epoch=epoch_done, nm=nm_pattern(ctx.config))
    return losses, run_recovery(recovery, inputs, ctx.config.recovery_options.get(recovery))


def units_stage(ctx: Context, source: str, score: str, sparsities: list[float],
                densities_from: str | None = None) -> list[dict[str, Any]]:
    """Several ``sgd`` units of one source and score re-trained together by ``finetune_many``; same metrics as
    ``unit_stage``. Used when ``FinetuneConfig.pack`` > 1. The units' locks are taken in key order (so
    two runs packing differently cannot deadlock) and held until their outputs are written."""
    def key(s: float) -> dict[str, Any]:
        return unit_key(ctx, source, score, s, densities_from=densities_from)

    with ExitStack() as claims:
        by_key = sorted(set(sparsities), key=lambda s: config_key(key(s)))
        claimed = {s for s in by_key if claims.enter_context(ctx.store.claim("unit", key(s)))}
        retrain_together(ctx, source, score, [s for s in sparsities if s in claimed], densities_from)
    return [unit_metrics(ctx, key(s)) for s in sparsities]


def retrain_together(ctx: Context, source: str, score: str, todo: list[float],
                     densities_from: str | None = None) -> None:
    """Mask, evaluate, re-train with ``finetune_many`` and write the units of sparsities ``todo``."""
    if todo:
        masks = [unit_mask(ctx, source, score, s, densities_from) for s in todo]
        pruned = [evaluate_pruned(ctx, MaskHolder(ctx.encoder.prunable_parameters(), m)) for m in masks]
        ctx.reset_weights()
        model = HeadedModel(ctx.encoder.model, ctx.encoder.feature_fn, ctx.heads[source])
        named = [{f"backbone.{n}": v for n, v in m.items()} for m in masks]
        stacked, losses = finetune_many(model, ctx.splits[source][0], named, ctx.config.finetune, ctx.normalize,
                                        ctx.device, seed=ctx.seed, autocast_dtype=ctx.autocast)
        for k, s in enumerate(todo):
            ctx.reset_weights()
            load_copy(model, stacked, k)
            write_unit(ctx, unit_key(ctx, source, score, s, densities_from=densities_from), masks[k], pruned[k],
                       losses[k])


def unit_metrics(ctx: Context, key: dict[str, Any]) -> dict[str, Any]:
    """The saved metrics of a finished unit: pruned and recovered (accuracy, loss) per task, train losses."""
    return json.loads((ctx.store.path("unit", key) / "metrics.json").read_text())


def nm_pattern(config: ExperimentConfig) -> tuple[int, int] | None:
    """(N, M) of the config's ``mask_options.nm``, or None for global masks."""
    nm = config.mask_options.get("nm")
    return parse_nm(nm) if nm is not None else None


def unit_mask(ctx: Context, source: str, score: str, sparsity: float,
              densities_from: str | None = None) -> dict[str, Tensor]:
    """The mask of one unit from its (cached) scores: global top-k at ``sparsity``, or the config's N:M pattern
    (whose sparsity the config check fixed at 1 - N/M); with ``densities_from`` = S, the top scores of each
    layer at exactly the per-layer kept counts of S's global mask at this sparsity."""
    def scores(name: str) -> dict[str, Tensor]:
        return scores_stage(ctx, source, name, sparsity if score_is_per_sparsity(name) else None)

    nm = nm_pattern(ctx.config)
    if nm is not None:
        return nm_mask(scores(score), *nm)[0]
    if densities_from is None:
        return global_mask(scores(score), sparsity)
    return mask_with_counts(scores(score), layer_counts(global_mask(scores(densities_from), sparsity)))


def evaluate_pruned(ctx: Context, holder: MaskHolder) -> dict[str, tuple[float, float]]:
    """Zero-shot metrics of every task with the mask applied to the unpruned weights (left applied)."""
    ctx.reset_weights()
    holder.hold()
    return {task: ctx.evaluate(task) for task in ctx.splits}


def write_unit(ctx: Context, key: dict[str, Any], mask: dict[str, Tensor], pruned: dict, losses: list[float],
               recovered: dict | None = None, recovery_seconds: float | None = None) -> None:
    """Evaluate the recovered weights now in the encoder (unless ``recovered`` metrics are given), write the
    unit's outputs (with the recovery's wall time when it was timed alone), restore theta0."""
    if recovered is None:
        recovered = {task: ctx.evaluate(task) for task in ctx.splits}
    metrics = {"pruned": pruned, "recovered": recovered, "train_loss": losses, "recovery_seconds": recovery_seconds}
    with ctx.store.writing("unit", key) as out:
        save_file({k: v.to(torch.uint8).contiguous() for k, v in mask.items()}, str(out / "mask.safetensors"))
        (out / "metrics.json").write_text(json.dumps(metrics))
        if ctx.config.save_weights:
            state = {k: v.detach().cpu().contiguous() for k, v in ctx.encoder.model.state_dict().items()}
            save_file(state, str(out / "recovered.safetensors"))
    ctx.reset_weights()
