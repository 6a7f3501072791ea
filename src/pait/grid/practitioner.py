"""``pait prune`` as a one-unit grid: one encoder, the ``--data`` folder as a one-task ``imagefolder`` suite,
one score, one sparsity (or N:M pattern, or channel ratio), one recovery, one seed.

The unit runs through the grid's own plan, stages and stage store (:func:`pait.executors.local`'s loop is
the caller's), so a rerun, or a ``pait run`` of the same settings, reuses its decoded images, heads,
scores and unit. What is left here is what only the practitioner wants: the accuracy through a head
refit on the pruned encoder, the parameter counts and storage sizes, the transfer probes (heads fit on the
unpruned encoder before the unit runs, their images decoded through the same cached data stage), the
exported checkpoint and its INT8 ONNX model.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pait.cache import config_key
from pait.config import EncoderConfig, ExperimentConfig, SuiteConfig
from pait.device import resolve_device
from pait.encoders import Encoder, build_encoder
from pait.errors import DataError
from pait.export import save_pruned, storage_bytes
from pait.export.structured import INT8_FILE, ONNX_FILE, STRUCTURE_FILE, export_onnx, load_structured, save_structured
from pait.grid.plan import Unit, stage_store
from pait.grid.stages import Context, data_stage, prepare, task_splits
from pait.grid.structure import WEIGHTS, structure_of
from pait.grid.structured import CHANNELS, CHANNELS_FILE
from pait.masks import Mask, density_report, mask_sparsity, parse_nm
from pait.prune.data import accuracy, fit_head
from pait.prune.options import PruneOptions
from pait.prune.nm import left_dense
from pait.prune import report as prune_report
from pait.prune.int8 import int8_markdown, measure_int8, write_int8
from pait.prune.probes import Probe, ProbeSet, encoder_features, fit_probes, probe_accuracies, probe_markdown, probe_report
from pait.prune.report import CPU_NOTE
from pait.prune.structured.report import NOTE
from pait.prune.structured.report import markdown as structured_markdown
from pait.tasks import Task, TaskData
from pait.tensorfiles import read_safetensors

CACHE_VARIABLE = "PAIT_CACHE"


def cache_root(cache: str | None) -> Path:
    """The stage cache of ``pait prune``: ``--cache``, else ``$PAIT_CACHE``, else ``~/.cache/pait``."""
    return Path(cache or os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "pait")


def prune_config(options: PruneOptions, task: Task) -> ExperimentConfig:
    """The one-unit grid of resolved ``options`` on the folder task ``task`` (:func:`pait.prune.data.check_folder`).
    Its name is ``prune-`` and a hash of the rest, so equal settings share one run folder in the cache."""
    o = options
    nm = parse_nm(o.nm) if o.nm is not None else None
    axis = o.target_speedup if o.target_speedup is not None else o.ratio  # a channel unit's axis value
    latency = ({"runtime": o.latency_runtime, "threads": o.latency_threads, "batch": o.latency_batch}
               if o.target_speedup is not None else {})
    suite = SuiteConfig("imagefolder", {"root": os.path.realpath(o.data), "tasks": {task.name: list(task.class_names)}},
                        "heldout", o.calib_per_class, o.eval_per_class, 0)
    config = ExperimentConfig(
        name="prune", encoders=(EncoderConfig(o.encoder, o.weights, o.input_size),), suite=suite, scores=(o.score,),
        sparsities=(axis if o.structure is not None else 1 - nm[0] / nm[1] if nm else o.sparsity,),
        finetune=o.finetune_config(), score_batch_size=o.batch_size, eval_batch_size=o.batch_size, seeds=(o.seed,),
        recoveries=(o.recovery,), score_options={o.score: o.score_options} if o.score_options else {},
        recovery_options={o.recovery: o.recovery_options} if o.recovery_options else {},
        device=o.device, precision="fp32", save_weights=True, structure=o.structure or WEIGHTS,
        round_to=o.round_to, latency=latency, mask_options={"nm": o.nm} if o.nm is not None else {})
    return dataclasses.replace(config, name=f"prune-{config_key(config)[:16]}")


def check_probe_splits(sets: list[ProbeSet], note: str) -> tuple[list[ProbeSet], str]:
    """``sets`` and ``note`` once every probe task has enough images per class for its split, before any work:
    a probe asked for that has too few is a DataError naming it; the default probes are then left out."""
    for probe_set in sets:
        try:
            task_splits(list(probe_set.tasks), probe_set.suite)
        except DataError as err:
            if probe_set.origin != "default":
                raise DataError(f"{probe_set.origin}: {err}") from None
            return [], f"No probe: the default probes have too few images for this split ({err})."
    return sets, note


def fit_unpruned_probes(config: ExperimentConfig, cache: Path, sets: list[ProbeSet], batch_size: int) -> list[Probe]:
    """The probes' ridge heads, fit on the unpruned encoder of ``config`` (call this before its unit runs),
    their images decoded through the grid's cached data stage under ``cache`` (a rerun reads them)."""
    if not sets:
        return []
    device = resolve_device(config.device)
    encoder = build_encoder(config.encoders[0])
    encoder.model.to(device).eval()
    store = stage_store(config, cache)

    def decode(probe_set: ProbeSet) -> dict[str, tuple[TaskData, TaskData]]:
        try:
            return data_stage(store, probe_set.suite, encoder, list(probe_set.tasks))[0]
        except DataError as err:
            raise DataError(f"{probe_set.origin}: {err}") from None

    return fit_probes(encoder, sets, batch_size, device, decoder=decode)


@dataclass
class Source:
    """The pruning folder's splits and the ridge head fit on the unpruned encoder's features (frozen)."""

    calib: TaskData
    evaluation: TaskData
    head: torch.Tensor


@dataclass
class Pruned:
    """The pruned encoder of a finished one-unit grid, what it is measured on, and the report of ``pait prune``."""

    encoder: Encoder
    report: dict[str, Any]
    source: Source
    probes: list[Probe]

    def write(self, folder: Path, options: PruneOptions) -> None:
        """Write the pruned checkpoint, its ONNX models as ``options`` ask (the INT8 one measured into the
        report) and the report into the new, empty ``folder``."""
        self.write_model(folder, options.onnx)
        if options.int8:
            self.report["int8"] = self.measure_int8(folder, options)
        prune_report.write_report(folder, self.report, self.markdown)

    def write_model(self, folder: Path, onnx: bool) -> None:
        """Write the pruned checkpoint (and with ``onnx`` its fp32 ONNX model) into ``folder``."""
        raise NotImplementedError

    def markdown(self, report: dict[str, Any]) -> str:
        """report.md: the structure's rendering, then the probes' and the INT8 model's blocks."""
        raise NotImplementedError

    def measure_int8(self, folder: Path, options: PruneOptions) -> dict[str, Any]:
        """Write ``pruned.int8.onnx`` of the current module, calibrated on the pruning folder's calibration
        images, and measure it against the fp32 ONNX model (``pruned.onnx`` when written) on the CPU."""
        model = copy.deepcopy(self.encoder.model).cpu()  # ONNX export and ONNX Runtime run on the CPU
        encoder = dataclasses.replace(self.encoder, model=model)
        path = write_int8(encoder, folder / INT8_FILE, self.source.calib, options.batch_size, options.int8_activations)
        fp32 = folder / ONNX_FILE if (folder / ONNX_FILE).is_file() else None
        cpu = torch.device("cpu")
        probes = [dataclasses.replace(p, head=p.head.to(cpu)) for p in self.probes]
        return measure_int8(encoder, path, self.source.evaluation, self.source.head.to(cpu), probes,
                            options.batch_size, threads=torch.get_num_threads() or 2, fp32_path=fp32)

    def summary(self) -> str:
        """One line for the terminal: accuracy before and after, what got smaller, the probes' retention."""
        acc = self.report["accuracy"]
        return (f"held-out accuracy {acc['before']:.4f} -> {acc['after']:.4f} (refit head "
                f"{acc['after_refit_head']:.4f})")

    def probe_summary(self) -> str:
        """The probes' mean retention, for the end of the terminal line ('' without probes)."""
        summary = self.report["probe_summary"]
        if not summary["count"]:
            return ""
        retention = summary["mean_retention"]
        kept = f"{retention:.3f}" if retention is not None else "-"
        return (f"; {summary['count']} transfer probe(s): accuracy {summary['mean_before']:.4f} -> "
                f"{summary['mean_after']:.4f}, mean retention {kept}")


def extra_markdown(report: dict[str, Any]) -> str:
    """The report.md blocks every structure shares: the transfer probes and the INT8 model."""
    blocks = [probe_markdown(report)] + ([int8_markdown(report["int8"])] if "int8" in report else [])
    return "\n" + "\n".join(blocks)


@dataclass
class PrunedWeights(Pruned):
    """Weights pruned by a mask: the stock module with zeros, and its mask."""

    mask: Mask

    def write_model(self, folder: Path, onnx: bool) -> None:
        save_pruned(self.encoder.model, self.mask, folder)

    def markdown(self, report: dict[str, Any]) -> str:
        return prune_report.markdown(report) + extra_markdown(report)

    def summary(self) -> str:
        return f"{super().summary()}; sparsity {self.report['sparsity']:.4f}"


@dataclass
class PrunedChannels(Pruned):
    """Channels removed: the smaller module and its ``structure.json`` record."""

    structure: dict[str, Any]

    def write_model(self, folder: Path, onnx: bool) -> None:
        spec = self.structure["timm"]
        save_structured(self.encoder.model, self.structure, folder, spec["architecture"], spec["kwargs"])
        if onnx:
            export_onnx(self.encoder.model, folder / ONNX_FILE, self.encoder.preprocess.input_size)

    def markdown(self, report: dict[str, Any]) -> str:
        return structured_markdown(report) + extra_markdown(report)

    def summary(self) -> str:
        size = self.report["size"]
        return (f"{super().summary()}; parameters {size['params_before']:,} -> {size['params_after']:,}; MACs "
                f"{size['macs_before']:,} -> {size['macs_after']:,}{self.latency_summary()}")

    def latency_summary(self) -> str:
        """Target and achieved speed-up, for the terminal line ('' for a channel ratio)."""
        latency = self.report.get("latency")
        if latency is None:
            return ""
        return (f"; speed-up target {latency['target_speedup']:.2f}x, achieved {latency['achieved_speedup']:.2f}x "
                f"in {latency['timing']['runtime']}")


def unit_of(config: ExperimentConfig) -> Unit:
    """The one unit of a config from :func:`prune_config`."""
    return Unit(config.encoders[0], config.scores[0], config.sparsities[0], next(iter(config.suite.options["tasks"])),
                config.seeds[0], config.recoveries[0], config.structure)


def finished(config: ExperimentConfig, cache: Path, options: PruneOptions, task: Task, probes: list[Probe],
             probe_note: str) -> Pruned:
    """Read the finished unit of ``config`` from the stage store under ``cache``: the pruned encoder (its
    recovered weights), the accuracy through a head refit on it and that of the ``probes`` (from
    :func:`fit_unpruned_probes`, described by ``probe_note``), and the report of ``pait prune``."""
    unit = unit_of(config)
    ctx = prepare(config, unit.encoder, stage_store(config, cache), unit.seed)  # cached: reads, computes nothing
    directory = ctx.store.path("unit", structure_of(unit.structure).unit_key(ctx, unit))
    metrics = json.loads((directory / "metrics.json").read_text())
    calib, evaluation = ctx.splits[unit.source]
    data = {"folder": str(options.data), "classes": list(task.class_names), "images": len(task.labels),
            "calibration": len(calib), "evaluation": len(evaluation), "protocol": "heldout"}
    common = {"options": dataclasses.asdict(options), "data": data,
              "accuracy": {"before": ctx.unpruned[unit.source][0], "after": metrics["recovered"][unit.source][0]}}
    source = Source(calib, evaluation, ctx.heads[unit.source])
    pruned = READERS[unit.structure](ctx, directory, common, options, source, probes)
    after = probe_accuracies(probes, encoder_features(pruned.encoder, options.batch_size, ctx.device))
    pruned.report |= probe_report(probes, after, probe_note)
    return pruned


def _refit(encoder: Encoder, ctx: Context, source: str, batch_size: int) -> float:
    """Held-out accuracy of ``encoder`` through a ridge head fit on its own calibration features."""
    calib, evaluation = ctx.splits[source]
    head = fit_head(encoder, calib, int(calib.labels.max()) + 1, batch_size, ctx.device)
    return accuracy(encoder, head, evaluation, batch_size, ctx.device)


def _counts(encoder: Encoder) -> dict[str, int]:
    params = list(encoder.model.parameters())
    prunable = list(encoder.prunable_parameters().values())
    return {"total": sum(p.numel() for p in params), "nonzero": sum(int(torch.count_nonzero(p)) for p in params),
            "prunable": sum(p.numel() for p in prunable),
            "prunable_nonzero": sum(int(torch.count_nonzero(p)) for p in prunable)}


def _weights(ctx: Context, directory: Path, report: dict[str, Any], options: PruneOptions, source: Source,
             probes: list[Probe]) -> Pruned:
    encoder = ctx.encoder
    before = _counts(encoder)
    encoder.model.load_state_dict(read_safetensors(directory / "recovered.safetensors"))
    mask = {k: v.bool() for k, v in read_safetensors(directory / "mask.safetensors").items()}
    report["accuracy"]["after_refit_head"] = _refit(encoder, ctx, next(iter(ctx.splits)), options.batch_size)
    m = parse_nm(options.nm)[1] if options.nm is not None else None  # N:M: the layers it leaves dense
    report |= {
        "parameters": {"before": before, "after": _counts(encoder)},
        "sparsity": mask_sparsity(mask),
        "density": [dataclasses.asdict(r) for r in density_report(mask)],
        "nm_dense_layers": [n for n, k in mask.items() if m is not None and left_dense(k.shape, m)],
        "storage_bytes": storage_bytes(encoder.model.state_dict(), mask),
        "note": CPU_NOTE,
    }
    return PrunedWeights(encoder, report, source, probes, mask)


def _channels(ctx: Context, directory: Path, report: dict[str, Any], options: PruneOptions, source: Source,
              probes: list[Probe]) -> Pruned:
    model = load_structured(directory, copy.deepcopy(ctx.encoder.model)).to(ctx.device)
    encoder = dataclasses.replace(ctx.encoder, model=model)
    record = json.loads((directory / CHANNELS_FILE).read_text())
    report["accuracy"]["after_refit_head"] = _refit(encoder, ctx, next(iter(ctx.splits)), options.batch_size)
    report |= {
        "size": {"params_before": record["params"][0], "params_after": record["params"][1],
                 "macs_before": record["macs"][0], "macs_after": record["macs"][1]},
        "removed_fraction": record["removed_fraction"],
        "groups": record["groups"],
        "note": NOTE,
    } | ({"latency": record["latency"]} if "latency" in record else {})
    return PrunedChannels(encoder, report, source, probes, json.loads((directory / STRUCTURE_FILE).read_text()))


READERS = {WEIGHTS: _weights, CHANNELS: _channels}  # by structure: what a finished unit of it leaves
