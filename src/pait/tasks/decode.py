"""Decoding images once into uint8 tensors: files read in a thread pool, bad images named or skipped."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pait.errors import DataError
from pait.tasks.base import Task, TaskData

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")
Pixels = Callable[[Image.Image | Tensor], Tensor]


@dataclass(frozen=True)
class FileImage:
    """An image source reading one file; a file that cannot be decoded raises a DataError naming it."""

    path: Path

    def __call__(self) -> Image.Image:
        try:
            with Image.open(self.path) as image:
                return to_rgb(image)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise DataError(f"cannot read image {self.path}: {err}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """The image as 8-bit RGB. 16-bit grey images (PIL modes ``I;16*`` and ``I``, e.g. 16-bit PNGs) are scaled
    from 0..65535 to 0..255 first: PIL's own conversion clips them, turning most of the image white."""
    if image.mode.startswith("I;16") or image.mode == "I":
        wide = np.asarray(image, dtype=np.float64)
        image = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), mode="L")
    return image.convert("RGB")


def is_image_file(path: Path) -> bool:
    """Whether ``path`` names an image file by its suffix (case-insensitive)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def default_workers() -> int:
    """Decoding threads: PIL releases the GIL while decoding, so one per core helps."""
    return max(1, min(16, os.cpu_count() or 1))


def decode(
    task: Task,
    indices: np.ndarray,
    pixels: Pixels,
    skip_bad: bool = False,
    workers: int | None = None,
    on_image: Callable[[], None] | None = None,
) -> TaskData:
    """Decode and preprocess the chosen images of ``task`` once into a uint8 tensor, in index order.

    An unreadable image raises a DataError naming it, or, with ``skip_bad``, is left out with a warning.
    ``on_image`` is called after each image (for a progress bar).
    """

    def load(i: int) -> Tensor | DataError:
        try:
            return pixels(task.sources[i]())
        except DataError as err:
            if not skip_bad:
                raise
            return err
        finally:
            if on_image is not None:
                on_image()

    with ThreadPoolExecutor(workers or default_workers()) as pool:
        results = list(pool.map(load, (int(i) for i in indices)))
    keep = [k for k, r in enumerate(results) if not isinstance(r, DataError)]
    for r in results:
        if isinstance(r, DataError):
            log.warning("task %s: skipping %s", task.name, r)
    if not keep:
        raise DataError(f"task {task.name!r}: none of its {len(indices)} selected images could be read")
    selected = task.labels[np.asarray(indices)]
    lost = sorted(set(selected.tolist()) - set(selected[keep].tolist()))
    if lost:
        names = ", ".join(task.class_names[c] for c in lost)
        raise DataError(f"task {task.name!r}: no readable image left in class(es) {names} after skipping "
                        "unreadable images (skip_bad_images); a task needs every class")
    images = torch.stack([results[k] for k in keep])
    return TaskData(images, torch.as_tensor(task.labels[np.asarray(indices)[keep]], dtype=torch.long))
