"""The practitioner's data: one folder of class sub-folders, split into calibration and held-out
evaluation images, and accuracy through a ridge head.

The folder is read as one task of the ``imagefolder`` suite, so reading, splitting and decoding are
the suites' own.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pait.encoders import Encoder
from pait.errors import ConfigError, DataError
from pait.heads import evaluate_head, extract_features
from pait.heads import fit_ridge
from pait.tasks import Task, TaskData, decode, split_indices
from pait.tasks.imagefolder import class_folder_task


def check_outside(path: str | Path, data: str | Path, what: str) -> None:
    """Refuse a ``path`` (an output folder) inside the data folder ``data``, where it is read as a class."""
    real, real_data = Path(os.path.realpath(path)), Path(os.path.realpath(data))
    if real == real_data or real_data in real.parents:
        raise ConfigError(f"{what} {path} lies inside --data {data}, where it is read as a class folder; "
                          "keep outputs out of the data folder")


def folder_task(folder: str | Path, what: str = "data folder") -> Task:
    """A task from ``folder/<class>/<image>``, class names sorted (as torchvision's ImageFolder does);
    ``what`` names the folder in errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{what} {folder} is a file, not a folder of class sub-folders" if folder.exists()
                        else f"{what} {folder} does not exist")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{what} {folder} has {len(classes)} class sub-folder(s); at least 2 are needed")
    return class_folder_task(folder.name, folder, classes)


def check_folder(folder: str | Path, calib_per_class: int, eval_per_class: int) -> Task:
    """The folder's task, once it is known to hold enough images per class for the held-out split."""
    if calib_per_class < 1 or eval_per_class < 1:
        raise ConfigError(f"calib_per_class and eval_per_class must be at least 1, got {calib_per_class} and {eval_per_class}")
    task = folder_task(folder)
    need = calib_per_class + eval_per_class
    counts = np.bincount(task.labels, minlength=task.num_classes)
    short = [f"{task.class_names[c]} ({n})" for c, n in enumerate(counts) if n < need]
    if short:
        raise DataError(f"data folder {folder}: the held-out split needs {need} images per class ({calib_per_class} calibration + "
                         f"{eval_per_class} evaluation); too few in: {', '.join(short)}")
    return task


def folder_splits(folder: str | Path, encoder: Encoder, calib_per_class: int, eval_per_class: int,
                  seed: int) -> tuple[Task, TaskData, TaskData]:
    """The task and its decoded calibration and held-out evaluation splits (seeded, class-balanced)."""
    task = check_folder(folder, calib_per_class, eval_per_class)
    calib_idx, eval_idx = split_indices(task.labels, "heldout", calib_per_class, eval_per_class, seed)
    pixels = encoder.preprocess.pixels
    return task, decode(task, calib_idx, pixels), decode(task, eval_idx, pixels)


def features(encoder: Encoder, data: TaskData, batch_size: int, device: torch.device) -> Tensor:
    """Pooled features of a split with the encoder's current weights."""
    return extract_features(encoder.features, data, encoder.preprocess.normalize, batch_size, device)


def fit_head(encoder: Encoder, calib: TaskData, num_classes: int, batch_size: int, device: torch.device) -> Tensor:
    """Ridge head (alpha 1, float64 solve) on the encoder's features of the calibration split."""
    return fit_ridge(features(encoder, calib, batch_size, device).double(), calib.labels, num_classes).float()


def accuracy(encoder: Encoder, head: Tensor, data: TaskData, batch_size: int, device: torch.device) -> float:
    """Accuracy of the encoder's features through ``head`` on a split."""
    return evaluate_head(features(encoder, data, batch_size, device), data.labels, head.cpu())[0]
