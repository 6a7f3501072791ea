"""Tasks: labelled images grouped into classification problems; splits by protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pait.errors import DataError

ImageSource = Callable[[], Image.Image | Tensor]


@dataclass(frozen=True)
class Task:
    """One classification task: image sources (PIL or uint8 CHW tensor loaders) and labels 0..C-1.

    ``inputs`` names the files the task was built from besides its image files (label files, a task
    list, data shipped in a package), so that stage keys can fingerprint them.
    """

    name: str
    class_names: tuple[str, ...]
    sources: Sequence[ImageSource]
    labels: np.ndarray
    inputs: tuple[Path, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.labels):
            raise DataError(f"task {self.name!r}: {len(self.sources)} images but {len(self.labels)} labels")
        if len(self.labels) == 0:
            raise DataError(f"task {self.name!r} has no images")
        if self.num_classes < 2:
            raise DataError(f"task {self.name!r} has {self.num_classes} class(es); a classification task needs at least 2")
        repeated = [c for i, c in enumerate(self.class_names) if c in self.class_names[:i]]
        if repeated:
            raise DataError(f"task {self.name!r}: class(es) {', '.join(dict.fromkeys(repeated))} listed more than once")
        empty = [self.class_names[c] for c in range(self.num_classes) if not (self.labels == c).any()]
        if empty:
            raise DataError(f"task {self.name!r}: no images for class(es) {', '.join(empty)}")


@dataclass
class TaskData:
    """Decoded images of one split of one task: uint8 pixels (N, 3, S, S) and int64 labels (N,)."""

    pixels: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> TaskData:
        """The split with its tensors on ``device`` (a no-op where they already are)."""
        return TaskData(self.pixels.to(device), self.labels.to(device))


PROTOCOLS = ("paper", "heldout")


def split_indices(
    labels: np.ndarray,
    protocol: str,
    calib_per_class: int,
    eval_per_class: int,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the calibration and evaluation images of a task.

    ``paper``: both are the same first ``calib_per_class`` images of each class (the study fits the
    heads, prunes, re-trains and evaluates on the same images; ``eval_per_class`` is unused).
    ``heldout``: a seeded class-balanced draw of ``calib_per_class`` calibration and
    ``eval_per_class`` disjoint evaluation images per class. ``class_names`` name classes in errors.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if calib_per_class < 1 or (protocol == "heldout" and eval_per_class < 1):
        raise DataError(f"calib_per_class and eval_per_class must be at least 1, got {calib_per_class}, {eval_per_class}")
    rng = np.random.default_rng(seed)
    calib, evaluation = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if protocol == "paper":
            chosen = idx[:calib_per_class]
            calib.append(chosen)
            evaluation.append(chosen)
            continue
        need = calib_per_class + eval_per_class
        if len(idx) < need:
            name = class_names[c] if class_names is not None else str(c)
            raise DataError(f"class {name} has {len(idx)} images; the heldout protocol needs {need} "
                            f"({calib_per_class} calibration + {eval_per_class} evaluation)")
        idx = rng.permutation(idx)
        calib.append(np.sort(idx[:calib_per_class]))
        evaluation.append(np.sort(idx[calib_per_class:need]))
    return np.concatenate(calib), np.concatenate(evaluation)


def suite_root(suite: str, root: str | Path | None, example: str) -> Path:
    """The folder named by a suite's ``root`` option; a DataError when it is missing or not a folder."""
    if root is None:
        raise DataError(f"the {suite} suite needs the option root (suite.options.root={example})")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{suite} root {path} is not a folder")
    return path
