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
    list, data shipped in a package), so that stage keys can fingerprint them. ``recipe`` describes how
    images made in memory are made (a renderer's version and parameters), also for stage keys.
    ``styles`` (optional, one index into ``style_names`` per image) says which drawing style each image
    is in, for the style-disjoint protocol, and ``style_designs`` (optional, one per style name) the
    design each style renders: styles of one design are held out together (by default each style is
    its own design). ``domain`` groups tasks for near and far transfer.
    """

    name: str
    class_names: tuple[str, ...]
    sources: Sequence[ImageSource]
    labels: np.ndarray
    inputs: tuple[Path, ...] = ()
    recipe: str = ""
    styles: np.ndarray | None = None
    style_names: tuple[str, ...] = ()
    style_designs: tuple[str, ...] = ()
    domain: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def designs(self) -> tuple[str, ...]:
        """The design of each style name (each style its own design unless ``style_designs`` says)."""
        return self.style_designs or self.style_names

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
        if self.styles is not None and (len(self.styles) != len(self.labels) or not self.style_names
                                        or not 0 <= int(np.min(self.styles)) <= int(np.max(self.styles)) < len(self.style_names)):
            raise DataError(f"task {self.name!r}: styles must give one index into its {len(self.style_names)} style "
                            "names per image")
        if self.style_designs and len(self.style_designs) != len(self.style_names):
            raise DataError(f"task {self.name!r}: {len(self.style_designs)} style designs for "
                            f"{len(self.style_names)} style names; give one design per style")


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


PROTOCOLS = ("paper", "heldout", "style-disjoint")


def split_indices(
    labels: np.ndarray,
    protocol: str,
    calib_per_class: int,
    eval_per_class: int,
    seed: int,
    class_names: Sequence[str] | None = None,
    styles: np.ndarray | None = None,
    style_names: Sequence[str] = (),
    style_designs: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the calibration and evaluation images of a task.

    ``paper``: both are the same first ``calib_per_class`` images of each class (the study fits the
    heads, prunes, re-trains and evaluates on the same images; ``eval_per_class`` is unused).
    ``heldout``: a seeded class-balanced draw of ``calib_per_class`` calibration and
    ``eval_per_class`` disjoint evaluation images per class. ``class_names`` name classes in errors.
    ``style-disjoint`` (tasks with ``styles``): the evaluation images are a seeded draw from the styles of
    one held-out design (:func:`held_out_design`; ``style_designs`` gives each style's design, by default
    its own name), the calibration images a seeded draw from the styles of every other design, so no
    design is on both sides.
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if calib_per_class < 1 or (protocol != "paper" and eval_per_class < 1):
        raise DataError(f"calib_per_class and eval_per_class must be at least 1, got {calib_per_class}, {eval_per_class}")
    if protocol == "style-disjoint":
        designs = tuple(style_designs) or tuple(style_names)
        return _style_disjoint(labels, calib_per_class, eval_per_class, seed, class_names, styles, style_names, designs)
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


def held_out_design(designs: Sequence[str], seed: int) -> str:
    """The design the style-disjoint protocol evaluates on for split seed ``seed``: designs in order of
    first appearance among the styles' ``designs``, design ``seed mod (number of designs)``."""
    order = list(dict.fromkeys(designs))
    return order[seed % len(order)]


def _style_disjoint(
    labels: np.ndarray, calib_per_class: int, eval_per_class: int, seed: int,
    class_names: Sequence[str] | None, styles: np.ndarray | None, style_names: Sequence[str],
    designs: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    if styles is None or len(set(designs)) < 2:
        found = "no styles" if styles is None else f"only the style(s) {', '.join(style_names)} of one design"
        raise DataError(f"the style-disjoint protocol needs images in at least 2 styles of different designs; this "
                        f"task has {found} (use protocol heldout, or install more emoji sets)")
    if len(designs) != len(style_names):
        raise DataError(f"{len(designs)} style designs for {len(style_names)} style names; give one design per style")
    held = held_out_design(designs, seed)
    held_styles = [i for i, d in enumerate(designs) if d == held]
    named = f"design {held} (style(s) {', '.join(style_names[i] for i in held_styles)})"
    in_held = np.isin(styles, held_styles)
    rng = np.random.default_rng(seed)
    calib, evaluation = [], []
    for c in np.unique(labels):
        name = class_names[c] if class_names is not None else str(c)
        for side, mask, need, out in (("evaluation", in_held, eval_per_class, evaluation),
                                      ("calibration", ~in_held, calib_per_class, calib)):
            idx = np.flatnonzero((labels == c) & mask)
            if len(idx) < need:
                raise DataError(f"class {name} has {len(idx)} {side} images with {named} held out; the "
                                f"style-disjoint protocol needs {need}")
            out.append(np.sort(rng.permutation(idx)[:need]))
    return np.concatenate(calib), np.concatenate(evaluation)


def suite_root(suite: str, root: str | Path | None, example: str) -> Path:
    """The folder named by a suite's ``root`` option; a DataError when it is missing or not a folder."""
    if root is None:
        raise DataError(f"the {suite} suite needs the option root (suite.options.root={example})")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise DataError(f"{suite} root {path} is not a folder")
    return path
