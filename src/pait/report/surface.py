"""A cached loss surface on a plane of weight space (Fig. 4): its axes, points and per-task grids."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pait.cache import write_atomic
from pait.errors import RunFolderError


@dataclass
class Surface:
    """A loss surface on the plane: axes, the three points' coordinates, per-task loss/accuracy grids."""

    alphas: np.ndarray
    betas: np.ndarray
    points: np.ndarray  # (3, 2): theta0, pruned, re-trained
    tasks: list[str]
    loss: np.ndarray  # (T, len(betas), len(alphas)), NaN where not yet computed
    accuracy: np.ndarray
    meta: dict

    @property
    def rows_done(self) -> int:
        return int((~np.isnan(self.loss).any(axis=(0, 2))).sum())

    def save(self, path: Path) -> None:
        """Write the surface atomically as ``.npz``."""
        buffer = io.BytesIO()
        np.savez(buffer, alphas=self.alphas, betas=self.betas, points=self.points, tasks=np.array(self.tasks),
                 loss=self.loss, accuracy=self.accuracy, meta=np.array(json.dumps(self.meta)))
        write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> Surface:
        """Read a surface written by ``save``."""
        try:
            with np.load(path) as z:
                return cls(z["alphas"], z["betas"], z["points"], [str(t) for t in z["tasks"]], z["loss"], z["accuracy"],
                           json.loads(str(z["meta"])))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:  # damaged, or another version's
            raise RunFolderError(f"surface {path} cannot be read ({type(err).__name__}: {err}); delete it to "
                                 "recompute it") from None
