"""Transfer probes of ``pait prune``: does the pruned backbone still serve tasks other than its pruning data?

Each probe task is split (seeded, class-balanced held-out protocol, as the grid splits), a ridge head is fit
on the *unpruned* encoder's calibration features and frozen, and the probe's held-out accuracy is measured
before pruning and after, through that same head (as the grid evaluates its transfer tasks).

Probes come from class folders (``--probe DIR``, read as one task of the ``imagefolder`` suite), from a
registered suite (``--probe-suite NAME``: its tasks), or, by default, from the embedded suite's tasks whose
images are not the pruning folder's. Each :class:`ProbeSet` carries the :class:`~pait.config.SuiteConfig`
that lists and splits it, so a caller holding a stage store can decode it through the grid's cached data
stage (``decoder``); the default decodes in memory, once per run.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from pait.config import SuiteConfig
from pait.encoders import Encoder
from pait.errors import ConfigError, DataError, UnknownNameError
from pait.fingerprints import listing_digest
from pait.heads import evaluate_head
from pait.prune.data import features, fit_head, folder_task
from pait.tasks import SUITES, Task, TaskData, decode, load_suite, split_indices
from pait.tasks.decode import FileImage

DEFAULT_SUITE = "embedded"
Splits = dict[str, tuple[TaskData, TaskData]]  # task -> (calibration, evaluation)


@dataclass(frozen=True)
class ProbeSet:
    """Probe tasks listed by one suite, and the suite config that lists and splits them (a data stage's key)."""

    suite: SuiteConfig
    tasks: tuple[Task, ...]
    origin: str  # how the user named them: "--probe DIR", "--probe-suite NAME" or "default"


@dataclass
class Probe:
    """One probe task: its decoded splits, the ridge head fit on the unpruned encoder, accuracy before."""

    name: str
    classes: tuple[str, ...]
    calib: TaskData
    evaluation: TaskData
    head: Tensor
    before: float


Decoder = Callable[[ProbeSet], Splits]


def _image_files(task: Task) -> list[Path]:
    return [Path(s.path) for s in task.sources if isinstance(s, FileImage)]


def _pixel_digest(image: Any) -> str:
    """sha256 of an image's pixels, grey when its channels agree (a PNG of an MNIST digit = the digit)."""
    pixels = pil_to_tensor(image) if not isinstance(image, Tensor) else image
    if pixels.shape[0] == 3 and torch.equal(pixels[0], pixels[1]) and torch.equal(pixels[0], pixels[2]):
        pixels = pixels[:1]
    return hashlib.sha256(str(tuple(pixels.shape)).encode() + pixels.contiguous().numpy().tobytes()).hexdigest()


def check_probe_folder(folder: Path, data: Path) -> None:
    """Refuse a probe folder that is ``data`` itself (same folder, or the same image files by content)."""
    if Path(os.path.realpath(folder)) == Path(os.path.realpath(data)):
        raise ConfigError(f"--probe {folder} is the pruning data (--data {data}); a probe must be another task")


def _folder_set(folder: Path, data_task: Task, data: Path, split: dict[str, int]) -> ProbeSet:
    check_probe_folder(folder, data)
    task = folder_task(folder, "probe folder")
    if listing_digest(_image_files(task)) == listing_digest(_image_files(data_task)):
        raise ConfigError(f"--probe {folder} holds the same images as --data {data} (by content); "
                          "a probe must be another task")
    suite = SuiteConfig("imagefolder", {"root": str(folder), "tasks": {task.name: list(task.class_names)}},
                        "heldout", **split)
    return ProbeSet(suite, (task,), f"--probe {folder}")


def _suite_set(name: str, split: dict[str, int], origin: str) -> ProbeSet:
    try:
        SUITES.get(name)
    except UnknownNameError as err:
        raise ConfigError(f"--probe-suite: {err}") from None
    return ProbeSet(SuiteConfig(name, {}, "heldout", **split), tuple(load_suite(name)), origin)


def _default_set(data_task: Task, split: dict[str, int]) -> tuple[list[ProbeSet], str]:
    """The embedded suite's tasks that share no image (by pixel content) with the pruning folder."""
    try:
        tasks = load_suite(DEFAULT_SUITE)
    except DataError as err:
        return [], f"No probe: the default probes (the {DEFAULT_SUITE} suite) are not installed ({err})."
    ours = {_pixel_digest(source()) for source in data_task.sources}
    kept = [t for t in tasks if ours.isdisjoint(_pixel_digest(s()) for s in t.sources)]
    left = [t.name for t in tasks if t not in kept]
    note = (f"Default probes: the {DEFAULT_SUITE} suite's tasks ({', '.join(t.name for t in kept) or 'none'}), "
            "small grey digits and clothing far from most pruning data: a coarse check that features stay general")
    note += f"; left out, sharing images with --data: {', '.join(left)}." if left else "."
    if not kept:
        return [], note
    return [ProbeSet(SuiteConfig(DEFAULT_SUITE, {}, "heldout", **split), tuple(kept), "default")], note


def probe_sets(folders: Sequence[str | Path], suite: str | None, data: str | Path, data_task: Task,
               calib_per_class: int, eval_per_class: int, seed: int,
               default: bool = True) -> tuple[list[ProbeSet], str]:
    """The probe tasks to measure and a sentence saying which and why: the ``folders`` (one task each) and
    the tasks of ``suite``, or with neither (and ``default``) the embedded suite's tasks that share no image
    with ``data_task`` (the pruning folder's task). Split as the pruning data is: ``calib_per_class`` +
    ``eval_per_class`` images per class, seed ``seed``. A bad probe is a ConfigError / DataError naming it."""
    split = {"calib_per_class": calib_per_class, "eval_per_class": eval_per_class, "split_seed": seed}
    data = Path(data)
    sets = [_folder_set(Path(f), data_task, data, split) for f in folders]
    if suite is not None:
        sets.append(_suite_set(suite, split, f"--probe-suite {suite}"))
    if sets:
        note = "Probes: " + "; ".join(s.origin for s in sets) + "."
    elif default:
        sets, note = _default_set(data_task, split)
    else:
        return [], "No probe (none asked for)."
    names = [t.name for s in sets for t in s.tasks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"probe task name(s) {', '.join(repeated)} given more than once (probe folders are named "
                          "by their last path component)")
    return sets, note


def decode_in_memory(pixels: Callable[[Any], Tensor]) -> Decoder:
    """A decoder of probe sets through ``pixels`` (an encoder's ``preprocess.pixels``), with no cache:
    the grid's data stage (``pait.grid.stages.data_stage(store, probe_set.suite, encoder, list(probe_set.tasks))``)
    is the cached one."""

    def run(probe_set: ProbeSet) -> Splits:
        s, splits = probe_set.suite, {}
        for task in probe_set.tasks:
            try:
                calib_idx, eval_idx = split_indices(task.labels, s.protocol, s.calib_per_class, s.eval_per_class,
                                                    s.split_seed, task.class_names)
                splits[task.name] = (decode(task, calib_idx, pixels), decode(task, eval_idx, pixels))
            except DataError as err:
                raise DataError(f"probe {task.name!r} ({probe_set.origin}): {err}") from None
        return splits

    return run


def fit_probes(unpruned: Encoder, sets: Sequence[ProbeSet], batch_size: int, device: torch.device,
               decoder: Decoder | None = None) -> list[Probe]:
    """Decode every probe once, fit its ridge head on the ``unpruned`` encoder's calibration features (call
    this before pruning: the heads are frozen from here on) and measure its held-out accuracy."""
    decoder = decoder or decode_in_memory(unpruned.preprocess.pixels)
    out = []
    for probe_set in sets:
        splits = decoder(probe_set)
        for task in probe_set.tasks:
            calib, evaluation = splits[task.name]
            head = fit_head(unpruned, calib, task.num_classes, batch_size, device)
            before = evaluate_head(features(unpruned, evaluation, batch_size, device), evaluation.labels, head)[0]
            out.append(Probe(task.name, task.class_names, calib, evaluation, head, before))
    return out


def encoder_features(encoder: Encoder, batch_size: int, device: torch.device) -> Callable[[TaskData], Tensor]:
    """The features of a split with the encoder's current weights (pruned or not)."""
    return lambda data: features(encoder, data, batch_size, device)


def probe_accuracies(probes: Sequence[Probe], features_of: Callable[[TaskData], Tensor]) -> list[float]:
    """Held-out accuracy of every probe through its frozen head, with features from ``features_of``
    (the pruned encoder, or an ONNX Runtime session)."""
    return [evaluate_head(features_of(p.evaluation), p.evaluation.labels, p.head)[0] for p in probes]


def probe_report(probes: Sequence[Probe], after: Sequence[float], note: str) -> dict[str, Any]:
    """``probes`` and ``probe_summary`` entries of report.json; retention = after / before (None where before is 0)."""
    rows = [{"name": p.name, "classes": list(p.classes), "calibration": len(p.calib), "evaluation": len(p.evaluation),
             "before": p.before, "after": a} for p, a in zip(probes, after, strict=True)]
    retained = [r["after"] / r["before"] for r in rows if r["before"] > 0]
    summary = {"count": len(rows), "note": note,
               "mean_before": sum(r["before"] for r in rows) / len(rows) if rows else None,
               "mean_after": sum(r["after"] for r in rows) / len(rows) if rows else None,
               "mean_retention": sum(retained) / len(retained) if retained else None}
    return {"probes": rows, "probe_summary": summary}


def probe_markdown(report: dict[str, Any]) -> str:
    """The report.md block of the probes."""
    summary = report["probe_summary"]
    lines = ["## Transfer probes", "", summary["note"], ""]
    if not report["probes"]:
        return "\n".join(lines)
    lines += ["Held-out accuracy of each probe through a ridge head fit on the unpruned encoder and frozen.", "",
              "| probe | classes | calibration | evaluation | before | after | retention |", "|---|---|---|---|---|---|---|"]
    for r in report["probes"]:
        kept = f"{r['after'] / r['before']:.3f}" if r["before"] > 0 else "-"
        lines.append(f"| {r['name']} | {len(r['classes'])} | {r['calibration']} | {r['evaluation']} | "
                     f"{r['before']:.4f} | {r['after']:.4f} | {kept} |")
    retention = summary["mean_retention"]
    lines += ["", f"Mean accuracy {summary['mean_before']:.4f} -> {summary['mean_after']:.4f}; mean retention "
              f"(after / before) {retention:.3f}." if retention is not None else "", ""]
    return "\n".join(lines)
