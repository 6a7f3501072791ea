"""Tasks: labelled images grouped into classification problems; splits by protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor

ImageSource = Callable[[], Image.Image | Tensor]


@dataclass(frozen=True)
class Task:
    """One classification task: image sources (PIL or uint8 CHW tensor loaders) and labels 0..C-1."""

    name: str
    class_names: tuple[str, ...]
    sources: Sequence[ImageSource]
    labels: np.ndarray

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.labels):
            raise ValueError(f"task {self.name!r}: {len(self.sources)} images but {len(self.labels)} labels")
        if len(self.labels) == 0:
            raise ValueError(f"task {self.name!r} has no images")
        empty = [self.class_names[c] for c in range(self.num_classes) if not (self.labels == c).any()]
        if empty:
            raise ValueError(f"task {self.name!r}: no images for class(es) {', '.join(empty)}")


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
    labels: np.ndarray, protocol: str, calib_per_class: int, eval_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the calibration and evaluation images of a task.

    ``paper``: both are the same first ``calib_per_class`` images of each class (the study prunes,
    re-trains and evaluates on the same images). ``heldout``: a seeded class-balanced draw of
    ``calib_per_class`` calibration and ``eval_per_class`` disjoint evaluation images per class.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
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
            raise ValueError(f"class {c} has {len(idx)} images; the heldout protocol needs {need}")
        idx = rng.permutation(idx)
        calib.append(np.sort(idx[:calib_per_class]))
        evaluation.append(np.sort(idx[calib_per_class:need]))
    return np.concatenate(calib), np.concatenate(evaluation)


def decode(task: Task, indices: np.ndarray, pixels: Callable[[Image.Image | Tensor], Tensor]) -> TaskData:
    """Decode and preprocess the chosen images once into a uint8 tensor."""
    images = torch.stack([pixels(task.sources[i]()) for i in indices])
    return TaskData(images, torch.as_tensor(task.labels[indices], dtype=torch.long))
